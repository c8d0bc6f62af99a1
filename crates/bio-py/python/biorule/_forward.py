"""A model's forward pass from its rule's op list (``Model._forward_pass()``, the Rust
``bio_core::forward::Op``): one interpreter, :func:`run`, over two array libraries, NumPy
(:func:`numpy_logits`) and PyTorch (``Model.to_torch``). No rule is named here: a rule says its pass
as ops, and every rule, registered or not, gets both.

Layout as in Rust: a batch is a row per sample; ``to_image`` makes images ``(N, C, H, W)`` from rows
holding pixels in (row, column, channel) order, ``from_image`` turns them back; the ops that
compete or normalize along dimension 1 act across features for rows and across channels for images.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np


class NumpyOps:
    """The primitives :func:`run` needs, in NumPy (float32)."""

    @staticmethod
    def relu(x: Any) -> Any:
        return np.maximum(x, 0.0)

    @staticmethod
    def mean1(x: Any) -> Any:
        return x.mean(axis=1, keepdims=True)

    @staticmethod
    def sum1(x: Any) -> Any:
        return x.sum(axis=1, keepdims=True)

    @staticmethod
    def row_norm(x: Any) -> Any:
        return np.sqrt((x * x).sum(axis=1, keepdims=True))

    @staticmethod
    def kth_largest(x: Any, k: int) -> Any:
        return -np.sort(-x, axis=1)[:, k : k + 1]

    @staticmethod
    def row_max(x: Any) -> Any:
        return x.max(axis=1, keepdims=True)

    @staticmethod
    def clamp_min(x: Any, floor: float) -> Any:
        return np.maximum(x, floor)

    @staticmethod
    def softmax(x: Any) -> Any:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    @staticmethod
    def conv2d(a: Any, w: Any, b: Any, padding: int) -> Any:
        n, c, h, width = a.shape
        c_out, _, k, _ = w.shape
        padded = np.pad(a, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        oh, ow = h + 2 * padding - k + 1, width + 2 * padding - k + 1
        out = np.zeros((n, c_out, oh, ow), dtype=np.float32)
        for dy in range(k):
            for dx in range(k):
                patch = padded[:, :, dy : dy + oh, dx : dx + ow]
                out += np.einsum("nchw,oc->nohw", patch, w[:, :, dy, dx])
        return out + b.reshape(1, -1, 1, 1)

    @staticmethod
    def max_pool2d(a: Any, kernel: int, stride: int, padding: int) -> Any:
        n, c, h, w = a.shape
        padded = np.pad(a, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=-np.inf)
        oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
        out = np.full((n, c, oh, ow), -np.inf, dtype=np.float32)
        for dy in range(kernel):
            for dx in range(kernel):
                out = np.maximum(out, padded[:, :, dy : dy + stride * oh : stride, dx : dx + stride * ow : stride])
        return out

    @staticmethod
    def permute(x: Any, order: List[int]) -> Any:
        return np.transpose(x, order)


def run(ops: List[Dict[str, Any]], tensor: Callable[[str], Any], x: Any, xp: Any) -> Any:
    """Runs ``ops`` on the rows ``x`` with ``tensor(name)`` giving the model's tensors (biases
    flattened to vectors) and ``xp`` the primitives (:class:`NumpyOps` or the torch ones)."""
    for op in ops:
        kind = op["op"]
        if kind == "l2_normalize":
            x = x / (op["eps"] + xp.row_norm(x))
        elif kind == "unit_norm":
            x = x / xp.clamp_min(xp.row_norm(x), op["guard"])
        elif kind == "peak_norm":
            x = x / xp.clamp_min(xp.row_max(x), op["guard"])
        elif kind == "subtract_mean":
            x = x - op["gain"] * xp.mean1(x)
        elif kind == "linear":
            x = x @ tensor(op["weight"]).T
            if op.get("bias") is not None:
                x = x + tensor(op["bias"])
        elif kind == "relu":
            x = xp.relu(x)
        elif kind == "k_winners":
            # The gathered (k+1)-th largest value: a gradient reaches the unit that sets it.
            x = xp.relu(x - xp.kth_largest(x, int(op["k"])))
        elif kind == "inhibitory":
            mean = xp.mean1(x)
            std = xp.mean1((x - mean) ** 2) ** 0.5
            x = xp.relu(x - (mean + op["gain"] * std))
        elif kind == "triangle":
            x = xp.relu(x - xp.mean1(x))
        elif kind == "power":
            if op["n"] != 1.0:
                x = x ** op["n"]
        elif kind == "divisive_norm":
            x = x / (op["constant"] + xp.sum1(x))
        elif kind == "softmax":
            x = xp.softmax(op["beta"] * x)
        elif kind == "to_image":
            h, w, c = int(op["height"]), int(op["width"]), int(op["channels"])
            x = xp.permute(x.reshape(-1, h, w, c), [0, 3, 1, 2])
        elif kind == "conv2d":
            x = xp.conv2d(x, tensor(op["weight"]), tensor(op["bias"]), int(op["padding"]))
        elif kind == "max_pool2d":
            x = xp.max_pool2d(x, int(op["kernel"]), int(op["stride"]), int(op["padding"]))
        elif kind == "from_image":
            x = xp.permute(x, [0, 2, 3, 1]).reshape(x.shape[0], -1)
        else:
            raise ValueError(f"forward pass: unknown op `{kind}` (this biorule is older than the model's rule)")
    return x


def conv_weight(stored: Any, kernel: int, channels_in: int) -> Any:
    """A conv weight stored ``C_out × (k·k·C_in)`` in (row, column, channel) order as
    ``(C_out, C_in, k, k)``."""
    return stored.reshape(stored.shape[0], kernel, kernel, channels_in).transpose(0, 3, 1, 2)


def shaped_tensors(ops: List[Dict[str, Any]], weights: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """The tensors the ops name, as :func:`run` takes them: biases as vectors, conv weights as
    ``(C_out, C_in, k, k)``."""
    out: Dict[str, np.ndarray] = {}
    channels = None
    for op in ops:
        kind = op["op"]
        if kind == "to_image":
            channels = int(op["channels"])
        elif kind == "conv2d":
            w = np.asarray(weights[op["weight"]], dtype=np.float32)
            out[op["weight"]] = conv_weight(w, int(op["kernel"]), int(channels))
            out[op["bias"]] = np.asarray(weights[op["bias"]], dtype=np.float32).reshape(-1)
            channels = w.shape[0]
        elif kind == "linear":
            out[op["weight"]] = np.asarray(weights[op["weight"]], dtype=np.float32)
            if op.get("bias") is not None:
                out[op["bias"]] = np.asarray(weights[op["bias"]], dtype=np.float32).reshape(-1)
    return out


def numpy_logits(model: Any, x: Any) -> np.ndarray:
    """The logits of ``model`` on ``x`` computed in NumPy from its rule's op list (what
    ``Model.logits`` computes in Rust)."""
    ops = model._forward_pass()["ops"]
    tensors = shaped_tensors(ops, model.weights())
    rows = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return np.asarray(run(ops, tensors.__getitem__, rows, NumpyOps), dtype=np.float32)
