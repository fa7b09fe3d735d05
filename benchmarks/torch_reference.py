"""The PyTorch peer of keras_alexnet's AlexNet, and the benchmark's PyTorch worker.

The same network as `keras_alexnet.build_alexnet(config)`, written the way a PyTorch user would:
NCHW, one `nn.Conv2d(groups=T)` per own-tower layer (or, with `grouped=False`, one conv per
tower, like the Keras build), `nn.LocalResponseNorm` with alpha multiplied by n (PyTorch divides
alpha by the window size n; the paper and TF do not), and the cuda-convnet overhang for 224 input
(zero padding bottom/right). tests/test_torch_reference.py proves it equivalent by copying the
Keras weights in (`copy_keras_weights`) and comparing logits.

As a program it times one (mode, batch, precision) cell, or PyTorch's fp32 and bf16 matmul
ceilings (kind "torch_machine"), and prints the result; `benchmarks.run` starts it in its own
process:

  python -m benchmarks.torch_reference '{"kind": "torch", "mode": "train", "batch_size": 64, ...}'

Precision "mixed_bfloat16" runs the forward pass and the loss under
`torch.autocast(device, dtype=torch.bfloat16)`, PyTorch's mixed precision: parameters,
gradients and the update stay float32, and autocast's own op lists decide which ops run in
bf16 (convolutions and linear layers) and which in float32 (the loss, softmax).

It imports no `keras_alexnet` module: importing that package loads Keras and, through it,
TensorFlow or JAX, which would add hundreds of MiB to this process and falsify the peer's
memory figure. The spec carries what it needs (the network's fields and `conv1_padding`).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.measure import matmul_gflops, peak_rss_mib, time_steps, worker_main

# Autocast dtype of each benchmark precision (benchmarks.settings.PRECISIONS); None: no autocast.
AUTOCAST_DTYPES = {"float32": None, "mixed_bfloat16": torch.bfloat16}


class TorchAlexNet(nn.Module):
    """AlexNet (Section 3, Figure 2) in PyTorch, equal to the Keras model with the same config.

    Args:
      config: a `keras_alexnet.AlexNetConfig` (any object with its fields and `conv1_padding`).
      grouped: True builds own-tower conv layers as one `Conv2d(groups=num_towers)` (the usual
        PyTorch idiom); False as one `Conv2d` per tower, split and concatenated.

    Input: float32 NCHW (batch, 3, S, S). Output: logits, or softmax probabilities when
    `config.classifier_activation == "softmax"`.
    """

    def __init__(self, config: Any, grouped: bool = True) -> None:
        super().__init__()
        c = config
        if any(k % 2 == 0 for k in c.conv_kernel_sizes[1:]):
            raise ValueError(f"conv_kernel_sizes={c.conv_kernel_sizes}: conv2..conv5 need odd "
                             "sizes for Keras' 'same' padding to be symmetric in PyTorch.")
        self.config = c
        self.grouped = grouped
        T = c.num_towers
        f, k = c.conv_filters, c.conv_kernel_sizes
        # Every tower's conv1 sees the whole image, so the towers' conv1 are one conv.
        self.conv1 = nn.Conv2d(3, f[0], k[0], stride=c.conv1_stride)
        self.conv2 = self._own(f[0], f[1], k[1])
        # Section 7's depth ablation drops conv3 or conv4; the layer after the gap takes the
        # dropped layer's input, so without conv3 conv4 sees both towers (as conv3 did).
        removed = c.removed_conv
        self.conv3 = None if removed == 3 else nn.Conv2d(f[1], f[2], k[2], padding=k[2] // 2)
        self.conv4 = (None if removed == 4 else
                      nn.Conv2d(f[1], f[3], k[3], padding=k[3] // 2) if removed == 3 else
                      self._own(f[2], f[3], k[3]))
        self.conv5 = self._own(f[2] if removed == 4 else f[3], f[4], k[4])
        self.conv6 = self._own(f[4], c.conv6_filters, 3) if c.conv6_filters else None
        self.act = nn.ReLU() if c.activation == "relu" else nn.Tanh()
        # PyTorch's LRN divides alpha by the window size n; the paper (and TF) do not.
        n = 2 * c.lrn_depth_radius + 1
        self.lrn = nn.LocalResponseNorm(n, alpha=c.lrn_alpha * n, beta=c.lrn_beta, k=c.lrn_bias)
        self.lrn_groups = 1 if c.lrn_across_towers else T
        self.pool = nn.MaxPool2d(c.pool_size, c.pool_stride)
        size = c.input_size + c.conv1_padding
        size = (size - k[0]) // c.conv1_stride + 1
        for _ in range(3):
            size = (size - c.pool_size) // c.pool_stride + 1
        last = c.conv6_filters or f[4]
        self.fc6 = nn.Linear(last * size * size, c.fc_units[0])
        self.fc7 = nn.Linear(c.fc_units[0], c.fc_units[1])
        self.fc8 = nn.Linear(c.fc_units[1], c.num_classes)
        self.drop = nn.Dropout(c.dropout_rate)

    def _own(self, cin: int, cout: int, kernel: int) -> nn.Module:
        T = self.config.num_towers
        if self.grouped or T == 1:
            return nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=T)
        return nn.ModuleList(
            nn.Conv2d(cin // T, cout // T, kernel, padding=kernel // 2) for _ in range(T)
        )

    def _apply_own(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, nn.ModuleList):
            parts = torch.chunk(x, len(layer), dim=1)
            return torch.cat([conv(p) for conv, p in zip(layer, parts)], dim=1)
        return layer(x)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.use_lrn:
            return x
        if self.lrn_groups == 1:
            return self.lrn(x)
        # The window stops at the tower boundary, as in the Keras build's default.
        return torch.cat([self.lrn(p) for p in torch.chunk(x, self.lrn_groups, dim=1)], dim=1)

    def _normalise_and_pool(self, x: torch.Tensor) -> torch.Tensor:
        # CaffeNet (the Caffe import) pools before it normalises; the paper after.
        if self.config.pool_before_lrn:
            return self._normalise(self.pool(x))
        return self.pool(self._normalise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.config.conv1_padding
        if pad:
            x = F.pad(x, (0, pad, 0, pad))  # the cuda-convnet overhang: bottom/right only
        x = self._normalise_and_pool(self.act(self.conv1(x)))
        x = self._normalise_and_pool(self.act(self._apply_own(self.conv2, x)))
        for conv in (self.conv3, self.conv4, self.conv5):
            if conv is not None:
                x = self.act(self._apply_own(conv, x))
        x = self.pool(x)
        if self.conv6 is not None:
            x = self.act(self._apply_own(self.conv6, x))
        x = torch.flatten(x, 1)
        x = self.drop(self.act(self.fc6(x)))
        x = self.drop(self.act(self.fc7(x)))
        x = self.fc8(x)
        return F.softmax(x, dim=1) if self.config.classifier_activation == "softmax" else x


def _keras_joined(keras_model: Any, base: int | str, towers: int) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of a Keras layer, its towers' parts concatenated along the output axis."""
    names = [str(base)] if towers == 1 else [f"{base}_t{t}" for t in range(towers)]
    kernels, biases = zip(*(keras_model.get_layer(n).get_weights() for n in names))
    return np.concatenate(kernels, axis=-1), np.concatenate(biases)


@torch.no_grad()
def copy_keras_weights(keras_model: Any, torch_model: TorchAlexNet) -> None:
    """Copies a Keras AlexNet's weights into `torch_model` (same config), converting layouts.

    Conv kernels HWIO -> OIHW (towers stacked along O, which is also the group order of a
    grouped conv); dense kernels (in, out) -> (out, in); fc6's input rows are permuted from
    Keras' (H, W, C) flatten order to PyTorch's (C, H, W).
    """
    c = torch_model.config
    T = c.num_towers

    def set_(param: torch.Tensor, value: np.ndarray) -> None:
        if tuple(param.shape) != value.shape:
            raise ValueError(f"Shape mismatch copying Keras weights: {value.shape} into "
                             f"{tuple(param.shape)}; are the two configs the same?")
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    convs = ["conv1", "conv2", "conv3", "conv4", "conv5"] + (["conv6"] if c.conv6_filters else [])
    for name in convs:
        if name == f"conv{c.removed_conv}":
            continue
        kernel, bias = _keras_joined(keras_model, name, T)
        layer = getattr(torch_model, name)
        oihw = kernel.transpose(3, 2, 0, 1)
        if isinstance(layer, nn.ModuleList):
            for conv, k, b in zip(layer, np.split(oihw, T), np.split(bias, T)):
                set_(conv.weight, k)
                set_(conv.bias, b)
        else:
            set_(layer.weight, oihw)
            set_(layer.bias, bias)
    _, h, w, ch = keras_model.get_layer("flatten").input.shape
    kernel, bias = _keras_joined(keras_model, "fc6", T)
    kernel = kernel.reshape(h, w, ch, -1).transpose(2, 0, 1, 3).reshape(h * w * ch, -1)
    set_(torch_model.fc6.weight, kernel.T)
    set_(torch_model.fc6.bias, bias)
    for name in ("fc7", "fc8"):
        kernel, bias = _keras_joined(keras_model, name, 1 if name == "fc8" else T)
        set_(getattr(torch_model, name).weight, kernel.T)
        set_(getattr(torch_model, name).bias, bias)


def network_config(spec: dict[str, Any]) -> types.SimpleNamespace:
    """The network of a cell spec as `TorchAlexNet` reads it (AlexNetConfig's fields)."""
    config = types.SimpleNamespace(**spec["config"], conv1_padding=spec["conv1_padding"])
    if spec["mode"] == "train":
        config.classifier_activation = None  # CrossEntropyLoss takes logits
    return config


def precision_scope(precision: str, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """The context to run a forward pass (and loss) in `precision`: autocast, or nothing.

    Raises:
      ValueError: a precision that is not in `AUTOCAST_DTYPES`.
    """
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"precision={precision!r}: use one of {sorted(AUTOCAST_DTYPES)}.")
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def _setup(spec: dict[str, Any]) -> torch.device:
    """Sets the threads of `spec`; the device to run on."""
    threads = spec["threads"]
    if threads:
        # Both before any parallel work, or PyTorch refuses the inter-op setting.
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
    use_gpu = spec["device"] != "cpu" and torch.cuda.is_available()
    return torch.device("cuda" if use_gpu else "cpu")


def _matmul_rate(dtype: torch.dtype, n: int, device: torch.device) -> dict[str, Any]:
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))

    def run() -> None:
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return matmul_gflops(run, n)


def measure_machine(spec: dict[str, Any]) -> dict[str, Any]:
    """PyTorch's fp32 and bf16 matmul ceilings: `torch.matmul` of two n x n matrices."""
    device = _setup(spec)
    n = spec["matmul_size"]
    return {"torch_matmul_gflops": _matmul_rate(torch.float32, n, device),
            "torch_bf16_matmul_gflops": _matmul_rate(torch.bfloat16, n, device),
            "version": torch.__version__, "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "peak_rss_mib": peak_rss_mib()}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Measures what `spec["kind"]` names: one cell ("torch") or the ceilings ("torch_machine").

    See benchmarks.run.cell_spec for the keys.
    """
    if spec["kind"] == "torch_machine":
        return measure_machine(spec)
    device = _setup(spec)
    use_gpu = device.type == "cuda"
    precision = spec["precision"]
    scope = lambda: precision_scope(precision, device.type)  # noqa: E731
    variant = spec["torch_variant"] or "grouped"  # see benchmarks.settings.TORCH_VARIANTS
    model, x, y = _network_and_batch(spec, variant, device)
    output_dtype: set[str] = set()  # what the network computed in (bf16 under autocast)
    if spec["mode"] == "train":
        step = _train_step(model, _paper_sgd(model, spec["sgd"]), x, y, scope, output_dtype)
    else:
        step = _infer_step(model, x, scope, output_dtype)

    def run() -> None:
        step()
        if use_gpu:
            torch.cuda.synchronize()

    times = time_steps(run, spec["warmup_steps"], spec["steps"])
    return {
        "images_per_s": x.shape[0] * len(times) / sum(times),
        "step_seconds": times,
        "peak_rss_mib": peak_rss_mib(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "device": torch.cuda.get_device_name() if use_gpu else "cpu",
        "version": torch.__version__,
        "variant": variant,
        "precision": precision,
        "output_dtype": ", ".join(sorted(output_dtype)),
    }


def _network_and_batch(spec: dict[str, Any], variant: str, device: torch.device
                       ) -> tuple[TorchAlexNet, torch.Tensor, torch.Tensor]:
    """The cell's network (seeded) in the variant's memory format, and a synthetic batch."""
    config = network_config(spec)
    torch.manual_seed(0)
    model = TorchAlexNet(config, grouped=variant.startswith("grouped")).to(device)
    fmt = torch.channels_last if variant.endswith("+cl") else torch.contiguous_format
    model = model.to(memory_format=fmt)
    b, s = spec["batch_size"], config.input_size
    # Synthetic mean-subtracted pixels on the 0..255 scale, as the Keras side uses.
    x = (torch.randn(b, 3, s, s, device=device) * 60).contiguous(memory_format=fmt)
    y = torch.randint(0, config.num_classes, (b,), device=device)
    return model, x, y


def _paper_sgd(model: TorchAlexNet, sgd: dict[str, Any]) -> torch.optim.SGD:
    """PaperSGD's update in PyTorch, with the training run's numbers (`spec["sgd"]`).

    torch.optim.SGD with momentum and weight_decay is PaperSGD's coupled rule: PyTorch keeps
    v' = m v' + g + wd w, w -= lr v', i.e. v' = -v / lr for the paper's v, the same trajectory
    at a fixed learning rate. PaperSGD decays kernels only (unless decay_biases), so biases
    get none.
    """
    decay_all = sgd["decay_biases"]
    decayed = [p for p in model.parameters() if decay_all or p.dim() >= 2]
    others = [p for p in model.parameters() if not decay_all and p.dim() < 2]
    return torch.optim.SGD(
        [{"params": decayed, "weight_decay": sgd["weight_decay"]},
         {"params": others, "weight_decay": 0.0}],
        lr=sgd["learning_rate"], momentum=sgd["momentum"],
    )


def _train_step(model: TorchAlexNet, opt: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, scope: Callable[[], contextlib.AbstractContextManager],
                output_dtype: set[str]) -> Callable[[], None]:
    """One training step on (x, y); records the logits' dtype in `output_dtype`."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with scope():  # the backward pass outside autocast, as PyTorch documents
            logits = model(x)
            loss = loss_fn(logits, y)
        output_dtype.add(str(logits.dtype))
        loss.backward()
        opt.step()

    return step


def _infer_step(model: TorchAlexNet, x: torch.Tensor,
                scope: Callable[[], contextlib.AbstractContextManager],
                output_dtype: set[str]) -> Callable[[], None]:
    """One forward pass on x without gradients; records the output's dtype."""
    model.eval()

    def step() -> None:
        with torch.inference_mode(), scope():
            output_dtype.add(str(model(x).dtype))

    return step


if __name__ == "__main__":
    worker_main(measure)
