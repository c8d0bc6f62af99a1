"""``Model.to_torch()``: a model as a ``torch.nn.Module`` computing its logits with its rule's
forward pass as ops (``Model._forward_pass()``; interpreted by ``biorule._forward.run``, the same
interpreter ``biorule._forward.numpy_logits`` uses with NumPy), the tensors from ``Model.weights()``.
No rule is named here: a rule outside the registry that says its pass as ops gets a module too.

Autograd through the module gives the same input gradient as ``Model.input_gradient``: in
particular a k-winners-take-all threshold is the gathered (k+1)-th largest drive, so the gradient
reaches the unit that sets it, as in the Rust backward pass, rather than treating it as a constant.
"""

from __future__ import annotations

from typing import Any, Dict, List

from . import _forward


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "Model.to_torch() needs PyTorch, which is not installed (pip install torch)"
        ) from e
    return torch


def to_torch(model: Any) -> Any:
    """See ``Model.to_torch``."""
    torch = _import_torch()
    nn = torch.nn
    functional = torch.nn.functional
    passed: Dict[str, Any] = model._forward_pass()
    ops: List[Dict[str, Any]] = passed["ops"]
    tensors = _forward.shaped_tensors(ops, model.weights())

    class TorchOps:
        """The primitives of ``biorule._forward.run`` in PyTorch."""

        relu = staticmethod(torch.relu)

        @staticmethod
        def mean1(x: Any) -> Any:
            return x.mean(dim=1, keepdim=True)

        @staticmethod
        def sum1(x: Any) -> Any:
            return x.sum(dim=1, keepdim=True)

        @staticmethod
        def row_norm(x: Any) -> Any:
            return x.norm(dim=1, keepdim=True)

        @staticmethod
        def kth_largest(x: Any, k: int) -> Any:
            return torch.topk(x, k + 1, dim=1).values[:, k : k + 1]

        @staticmethod
        def row_max(x: Any) -> Any:
            return x.amax(dim=1, keepdim=True)

        @staticmethod
        def clamp_min(x: Any, floor: float) -> Any:
            return x.clamp_min(floor)

        @staticmethod
        def softmax(x: Any) -> Any:
            return torch.softmax(x, dim=1)

        @staticmethod
        def conv2d(a: Any, w: Any, b: Any, padding: int) -> Any:
            return functional.conv2d(a, w, b, padding=padding)

        @staticmethod
        def max_pool2d(a: Any, kernel: int, stride: int, padding: int) -> Any:
            return functional.max_pool2d(a, kernel, stride, padding)

        @staticmethod
        def permute(x: Any, order: List[int]) -> Any:
            return x.permute(*order)

    def inputs(module: Any, x: Any) -> Any:
        """Images ``x`` as the module computes on them: flattened to ``(n, pixels)``, in the dtype of
        its parameters. A float64 tensor (what ``torch.from_numpy`` makes of a NumPy default array)
        is cast, as ``Model.predict`` casts float64 arrays; autograd passes through the cast, so
        ``x.grad`` comes back in ``x``'s own dtype. Integer images (0-255 bytes) are refused: they
        are not pixels in [0, 1], and casting them would silently change what is computed."""
        if not torch.is_tensor(x):
            x = torch.as_tensor(x)
        if not torch.is_floating_point(x):
            raise TypeError(
                f"to_torch module: images must be a floating-point tensor with pixels in [0, 1], got {x.dtype}"
            )
        dtype = next(module.parameters()).dtype
        x = x if x.dtype == dtype else x.to(dtype)
        return x.reshape(x.shape[0], -1)

    class ForwardModule(nn.Module):
        """The model's forward pass (see ``forward_text``); parameters named as ``Model.weights()``
        with ``.`` written ``__``."""

        def __init__(self) -> None:
            super().__init__()
            self.ops = ops
            # The array primitives the ops run on (a test swaps in a variant).
            self.primitives = TorchOps
            self.weights = nn.ParameterDict(
                {name.replace(".", "__"): nn.Parameter(torch.from_numpy(t.copy())) for name, t in tensors.items()}
            )

        def tensor(self, name: str) -> Any:
            return self.weights[name.replace(".", "__")]

        def forward(self, x: Any) -> Any:
            return _forward.run(self.ops, self.tensor, inputs(self, x), self.primitives)

    module = ForwardModule()
    module.rule = passed["rule"]
    module.forward_text = model.forward_text
    return module.eval()
