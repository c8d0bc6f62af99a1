"""Every rule's forward pass as ops (``Model._forward_pass()``), interpreted in NumPy by
``biorule._forward`` — the interpreter ``Model.to_torch()`` runs over PyTorch — gives the Rust
model's logits. No torch needed: this runs in CI, and covers the interpreter's every op."""

import numpy as np
import pytest

import biorule
from biorule import _forward

TRAIN = 1000
PROBES = 100

RUNS = {
    "bio": dict(rule="bio", hidden=[60]),
    "bio-two-layers": dict(rule="bio", hidden=[60, 30], active_fraction=0.1),
    "bio-response-power": dict(rule="bio", hidden=[60], response_power=2.0),
    "bio-inhibitory": dict(rule="bio", hidden=[60], competition="inhibitory", feedforward_inhibition=0.5),
    "bp": dict(rule="bp", hidden=[40, 20]),
    "kh": dict(rule="kh", hidden=[60], kh_n=3.0),
    "softhebb": dict(rule="softhebb", hidden=[60]),
    "conv": dict(rule="conv", conv="8:5,12:3", conv_density=0.25),
    "conv-soft": dict(rule="conv", conv="8:5", conv_competition="soft"),
    "bpconv": dict(rule="bpconv", bpconv="8:5"),
}


@pytest.fixture(scope="module")
def data():
    x, y, x_test, _ = biorule.datasets.load("embedded")
    return x[:TRAIN], y[:TRAIN], x_test[:PROBES]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_ops_give_the_model_s_logits(name, data):
    x, y, probes = data
    model = biorule.Trainer(seed=0, **RUNS[name]).fit(x, y, epochs=1, batch=100)
    expected = model.logits(probes)
    got = _forward.numpy_logits(model, probes)
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    # `bio`'s activity is a difference of nearly equal drives (see test_torch.py): float32 sums in
    # another order move it by ~1e-3 of the logits' scale; a wrong op moves them by 0.1–10.
    difference = float(np.abs(got - expected).max())
    assert difference <= 2e-3 * scale, f"{name}: |numpy − rust| = {difference:.3g} (scale {scale:.3g})"
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.97


def test_an_unknown_op_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown op `teleport`"):
        _forward.run([{"op": "teleport"}], {}.__getitem__, np.zeros((1, 2), np.float32), _forward.NumpyOps)


def test_a_wrong_op_list_is_caught(data):
    # The comparison can fail: bp's pass without its ReLUs gives other logits.
    x, y, probes = data
    model = biorule.Trainer(seed=0, rule="bp", hidden=[40]).fit(x, y, epochs=1, batch=100)
    ops = [op for op in model._forward_pass()["ops"] if op["op"] != "relu"]
    tensors = _forward.shaped_tensors(ops, model.weights())
    got = _forward.run(ops, tensors.__getitem__, probes.reshape(len(probes), -1).astype(np.float32), _forward.NumpyOps)
    assert float(np.abs(got - model.logits(probes)).max()) > 1e-2
