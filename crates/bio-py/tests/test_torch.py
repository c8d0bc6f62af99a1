"""``Model.to_torch()`` against the Rust model, for every rule: the same logits, and autograd's input
gradient equal to ``Model.input_gradient`` (the Rust backward pass).

These tests need PyTorch and skip without it; CI installs no torch (it is a multi-gigabyte
download), so CI skips them and they are run by hand where torch is installed:
``pip install torch`` next to biorule, then ``pytest crates/bio-py/tests/test_torch.py``.
"""

import copy

import numpy as np
import pytest

import biorule

torch = pytest.importorskip("torch")

TRAIN = 2000
PROBES = 200

# Brief runs on part of the embedded data, with each rule's own settings where the default needs a
# longer run to produce anything but a degenerate layer.
RUNS = {
    "bio": dict(rule="bio", hidden=[60]),
    "bio-two-layers": dict(rule="bio", hidden=[60, 30], active_fraction=0.1),
    "bio-response-power": dict(rule="bio", hidden=[60], response_power=2.0, anti_hebbian=0.3, anti_hebbian_ranks=6),
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
    x, y, x_test, y_test = biorule.datasets.load("embedded")
    return x[:TRAIN], y[:TRAIN], x_test[:PROBES], y_test[:PROBES]


@pytest.fixture(scope="module", params=sorted(RUNS))
def trained(request, data):
    x, y, _, _ = data
    settings = dict(RUNS[request.param])
    model = biorule.Trainer(seed=0, **settings).fit(x, y, epochs=2, batch=100)
    return model, model.to_torch()


def float64_copy(module):
    """The same module in float64: the reference both float32 computations round."""
    return copy.deepcopy(module).double()


def assert_same_up_to_float32(rust, torch32, torch64, tolerance):
    """`rust` (biorule, float32) and `torch32` (the module, float32) agree within `tolerance` times
    the values' scale, plus a few times what float32 rounding alone moves the result here.

    The second term matters for `bio` only: its activity is `u − θ`, a difference of nearly equal
    drives (cosines near 1, the winners a few thousandths above θ), so a float32 rounding of `u` of
    1e-6 becomes 1e-3 of the activity; Rust and PyTorch sum the 784 products in different orders and
    land ~1e-3 apart, each about as far from the float64 value. A wrong forward pass (another k, a
    missing bias or normalization) moves the logits by 0.1–10, far outside this bound."""
    scale = max(1.0, float(np.abs(torch64).max()))
    rounding = float(np.abs(torch32 - torch64).max())
    difference = float(np.abs(rust - torch32).max())
    bound = tolerance * scale + 4 * rounding
    assert difference <= bound, f"|rust − torch| = {difference:.3g} > {bound:.3g} (float32 rounding {rounding:.3g})"


def test_torch_logits_equal_the_models(data, trained):
    model, module = trained
    _, _, x_test, _ = data
    with torch.no_grad():
        logits = module(torch.from_numpy(x_test)).numpy()
        reference = float64_copy(module)(torch.from_numpy(x_test).double()).numpy()
    expected = model.logits(x_test)
    assert logits.shape == expected.shape == (PROBES, 10)
    assert_same_up_to_float32(expected, logits, reference, 1e-4)
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    reference_probabilities = torch.softmax(torch.from_numpy(reference), dim=1).numpy()
    assert_same_up_to_float32(model.predict_proba(x_test), probabilities, reference_probabilities, 1e-4)
    assert (logits.argmax(axis=1) == model.predict(x_test)).mean() >= 0.99


def autograd_losses_and_gradient(module, x_test, y_test, dtype):
    x = torch.from_numpy(x_test.reshape(PROBES, -1).copy()).to(dtype).requires_grad_(True)
    losses = torch.nn.functional.cross_entropy(module(x), torch.from_numpy(y_test), reduction="none")
    losses.sum().backward()
    return losses.detach().numpy(), x.grad.numpy().reshape(x_test.shape)


def test_torch_input_gradient_equals_the_models(data, trained):
    model, module = trained
    _, _, x_test, y_test = data
    losses, gradient = autograd_losses_and_gradient(module, x_test, y_test, torch.float32)
    losses64, gradient64 = autograd_losses_and_gradient(float64_copy(module), x_test, y_test, torch.float64)
    rust_losses, rust_gradient = model.input_gradient(x_test, y_test)
    assert_same_up_to_float32(rust_losses, losses, losses64, 1e-4)
    assert np.abs(rust_gradient).max() > 0, "a gradient that is zero everywhere would make this test vacuous"
    assert_same_up_to_float32(rust_gradient / np.abs(gradient64).max(), gradient / np.abs(gradient64).max(),
                              gradient64 / np.abs(gradient64).max(), 1e-3)
    # Row by row, the direction an attack follows agrees, on every image whose loss is not saturated:
    # at a loss of ~1e-7 PyTorch's float32 `softmax − onehot` is rounding noise (Rust's is not: it
    # agrees with float64 there), so those few rows have no direction to compare.
    a, b = gradient.reshape(PROBES, -1), rust_gradient.reshape(PROBES, -1)
    norms = np.linalg.norm(gradient64.reshape(PROBES, -1), axis=1)
    compared = norms >= 1e-3 * np.median(norms)
    # Most rows must be compared; a prototype readout (`response_power` > 1) saturates a few more
    # losses of this brief model (86–90% of rows left), so it alone gets 80%.
    prototype = any(op["op"] == "power" for op in module.ops)
    assert compared.mean() >= (0.8 if prototype else 0.9)
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    assert cosine[compared].min() >= 0.99


def test_the_kwta_threshold_carries_gradient(data):
    """With the threshold held constant the gradient differs: the gathered θ is what makes it exact."""
    x, y, x_test, y_test = data
    model = biorule.Trainer(rule="bio", hidden=[60], seed=0).fit(x, y, epochs=2)
    module = model.to_torch()

    def gradient(detach_threshold):
        original = module.primitives
        if detach_threshold:

            class Detached(original):
                @staticmethod
                def kth_largest(x, k):
                    return original.kth_largest(x, k).detach()

            module.primitives = Detached
        try:
            return autograd_losses_and_gradient(module, x_test, y_test, torch.float32)[1]
        finally:
            module.primitives = original

    _, rust = model.input_gradient(x_test, y_test)
    exact, constant = gradient(False), gradient(True)
    scale = np.abs(rust).max()
    assert np.abs(exact - rust).max() <= 0.05 * scale
    assert np.abs(constant - rust).max() > 0.2 * scale


def test_the_module_documents_its_forward_pass(trained):
    model, module = trained
    assert module.rule == model.rule
    assert module.forward_text == model.forward_text
    parameters = sum(p.numel() for p in module.parameters())
    exported = sum(w.size for name, w in model.weights().items() if not name.endswith((".mask", ".rate")))
    assert parameters == exported



def test_float64_images_are_cast_and_integer_images_refused(data, trained):
    """NumPy's default float64 arrays give the float32 module the same logits and a float64
    gradient, as ``Model.predict`` accepts float64; 0-255 integer images are one clear TypeError."""
    _, module = trained
    _, _, x_test, y_test = data
    with torch.no_grad():
        as32 = module(torch.from_numpy(x_test)).numpy()
        as64 = module(torch.from_numpy(x_test.astype(np.float64)))
    assert as64.dtype == torch.float32
    assert np.array_equal(as64.numpy(), as32)
    x = torch.from_numpy(x_test.reshape(PROBES, -1).astype(np.float64)).requires_grad_(True)
    torch.nn.functional.cross_entropy(module(x), torch.from_numpy(y_test)).backward()
    assert x.grad.dtype == torch.float64 and x.grad.abs().max() > 0
    with pytest.raises(TypeError, match=r"to_torch module: images must be a floating-point tensor .* got torch.uint8"):
        module(torch.from_numpy((x_test * 255).astype(np.uint8)))
