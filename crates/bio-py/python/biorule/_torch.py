"""``Model.to_torch()``: a model as a ``torch.nn.Module`` computing its logits with the documented
forward pass of its rule (``Model.forward_text``; the constants come from
``Model._forward_constants()``, the tensors from ``Model.weights()``, both read from the Rust model).

Autograd through the module gives the same input gradient as ``Model.input_gradient``: in
particular the k-winners-take-all threshold of ``bio`` is the gathered (k+1)-th largest drive, so the
gradient reaches the unit that sets it, as in the Rust backward pass, rather than treating it as a
constant.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np


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
    constants: Dict[str, Any] = model._forward_constants()
    weights = {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in model.weights().items()}

    def parameter(name: str, vector: bool = False) -> Any:
        tensor = weights[name]
        # Biases are stored 1×n; PyTorch's convention is a vector.
        return nn.Parameter(tensor.reshape(-1) if vector else tensor)

    def flat(x: Any) -> Any:
        return x.reshape(x.shape[0], -1)

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
        return flat(x if x.dtype == dtype else x.to(dtype))

    class BioModule(nn.Module):
        """Per hidden layer: xn = x / (eps + ‖x‖₂); xf = xn − g·mean(xn); u = xf Wᵀ + b;
        x = relu(u − θ(u)). Readout: h = xⁿ / (σⁿ + Σxⁿ) (n = 1 unless `--response-power`); logits = h Vᵀ + c."""

        def __init__(self) -> None:
            super().__init__()
            layers = len(model.hidden_sizes)
            self.weights = nn.ParameterList([parameter(f"hidden.{i}.weight") for i in range(layers)])
            self.biases = nn.ParameterList([parameter(f"hidden.{i}.bias", vector=True) for i in range(layers)])
            self.readout_weight = parameter("readout.weight")
            self.readout_bias = parameter("readout.bias", vector=True)
            self.input_eps = float(constants["input_eps"])
            self.feedforward_inhibition = float(constants["feedforward_inhibition"])
            self.normalization_sigma = float(constants["normalization_sigma"])
            self.response_power = float(constants["response_power"])
            threshold = constants["threshold"]
            self.threshold_kind: str = threshold["kind"]
            self.winners: List[int] = list(threshold.get("k", []))
            self.inhibitory_gain = float(threshold.get("gain", 0.0))

        def threshold(self, u: Any, layer: int) -> Any:
            if self.threshold_kind == "k_winners":
                k = self.winners[layer]
                # The (k+1)-th largest drive, gathered: differentiable, its gradient goes to that unit.
                return torch.topk(u, k + 1, dim=1).values[:, k : k + 1]
            if self.threshold_kind == "inhibitory":
                mean = u.mean(dim=1, keepdim=True)
                std = ((u - mean) ** 2).mean(dim=1, keepdim=True).sqrt()
                return mean + self.inhibitory_gain * std
            return torch.zeros_like(u[:, :1])

        def forward(self, x: Any) -> Any:
            x = inputs(self, x)
            for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
                xn = x / (self.input_eps + x.norm(dim=1, keepdim=True))
                if self.feedforward_inhibition != 0.0:
                    xn = xn - self.feedforward_inhibition * xn.mean(dim=1, keepdim=True)
                u = xn @ w.T + b
                x = torch.relu(u - self.threshold(u, layer))
            n = self.response_power
            if n != 1.0:
                # The prototype readout (`--response-power n`): yⁿ, with the constant σⁿ.
                x = x**n
            h = x / (self.normalization_sigma**n + x.sum(dim=1, keepdim=True))
            return h @ self.readout_weight.T + self.readout_bias

    class BpModule(nn.Module):
        """x = relu(x Wᵢᵀ + bᵢ) per hidden layer; logits = x Wᵀ + b of the last layer."""

        def __init__(self) -> None:
            super().__init__()
            layers = len(model.hidden_sizes) + 1
            self.weights = nn.ParameterList([parameter(f"layer.{i}.weight") for i in range(layers)])
            self.biases = nn.ParameterList([parameter(f"layer.{i}.bias", vector=True) for i in range(layers)])

        def forward(self, x: Any) -> Any:
            x = inputs(self, x)
            last = len(self.weights) - 1
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                x = x @ w.T + b
                if i < last:
                    x = torch.relu(x)
            return x

    class KhModule(nn.Module):
        """r = relu(x Wᵀ); q = (r / max r)ⁿ; ĥ = q / ‖q‖₂ (max and norm floored at ``guard``);
        logits = ĥ Vᵀ + c. Dividing by the row's peak first keeps rⁿ from overflowing; ĥ is the
        same."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = parameter("hidden.0.weight")
            self.readout_weight = parameter("readout.weight")
            self.readout_bias = parameter("readout.bias", vector=True)
            self.power = float(constants["n"])
            self.guard = float(constants["guard"])

        def forward(self, x: Any) -> Any:
            r = torch.relu(inputs(self, x) @ self.weight.T)
            peak = r.amax(dim=1, keepdim=True).clamp_min(self.guard)
            q = (r / peak) ** self.power
            norm = q.norm(dim=1, keepdim=True).clamp_min(self.guard)
            return (q / norm) @ self.readout_weight.T + self.readout_bias

    class SoftHebbModule(nn.Module):
        """x̂ = x / (eps + ‖x‖₂); y = softmax(β·(x̂ Wᵀ + b)); logits = y Vᵀ + c."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = parameter("hidden.0.weight")
            self.bias = parameter("hidden.0.bias", vector=True)
            self.readout_weight = parameter("readout.weight")
            self.readout_bias = parameter("readout.bias", vector=True)
            self.input_eps = float(constants["input_eps"])
            self.beta = float(constants["beta"])

        def forward(self, x: Any) -> Any:
            x = inputs(self, x)
            xn = x / (self.input_eps + x.norm(dim=1, keepdim=True))
            y = torch.softmax(self.beta * (xn @ self.weight.T + self.bias), dim=1)
            return y @ self.readout_weight.T + self.readout_bias

    class ConvModule(nn.Module):
        """`conv` and `bpconv`: per layer, u = conv2d(a, W) + b (stride 1, padding k//2; W stored
        (C', k·k·C) in (row, column, channel) order); y = relu(u − θ) with θ the (k+1)-th largest
        channel at each position (k-WTA), relu(u − mean over channels) (triangle) or relu(u); max
        pool per channel; logits = flatten(a in (row, column, channel) order) Vᵀ + c."""

        def __init__(self) -> None:
            super().__init__()
            self.image = list(constants["image"])
            self.kind: str = constants["competition"]
            self.layers: List[Dict[str, Any]] = list(constants["layers"])
            kernels = []
            channels_in = self.image[2]
            for i, layer in enumerate(self.layers):
                k, c_out = int(layer["kernel"]), int(layer["channels"])
                w = weights[f"conv.{i}.weight"].reshape(c_out, k, k, channels_in).permute(0, 3, 1, 2).contiguous()
                kernels.append(nn.Parameter(w))
                channels_in = c_out
            self.weights = nn.ParameterList(kernels)
            self.biases = nn.ParameterList([parameter(f"conv.{i}.bias", vector=True) for i in range(len(self.layers))])
            self.readout_weight = parameter("readout.weight")
            self.readout_bias = parameter("readout.bias", vector=True)

        def forward(self, x: Any) -> Any:
            h, w, c = self.image
            a = inputs(self, x).reshape(-1, h, w, c).permute(0, 3, 1, 2)
            for i, layer in enumerate(self.layers):
                u = torch.nn.functional.conv2d(a, self.weights[i], self.biases[i], padding=int(layer["padding"]))
                if self.kind == "k_winners":
                    k = int(layer["k"])
                    theta = torch.topk(u, k + 1, dim=1).values[:, k : k + 1]
                    a = torch.relu(u - theta)
                elif self.kind == "triangle":
                    a = torch.relu(u - u.mean(dim=1, keepdim=True))
                else:
                    a = torch.relu(u)
                if layer["pool"] is not None:
                    pk, ps, pp = layer["pool"]
                    a = torch.nn.functional.max_pool2d(a, pk, ps, pp)
            return flat(a.permute(0, 2, 3, 1)) @ self.readout_weight.T + self.readout_bias

    modules = {
        "bio": BioModule,
        "bp": BpModule,
        "kh": KhModule,
        "softhebb": SoftHebbModule,
        "conv": ConvModule,
        "bpconv": ConvModule,
    }
    rule = constants["rule"]
    if rule not in modules:
        raise ValueError(f"to_torch: no PyTorch forward pass for rule `{rule}`")
    module = modules[rule]()
    module.rule = rule
    module.forward_text = model.forward_text
    return module.eval()
