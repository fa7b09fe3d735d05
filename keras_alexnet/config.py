"""The paper's hyperparameters, in one place: the network's (Section 3) and SGD's (Section 5)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

ACTIVATIONS = ("relu", "tanh")

# Section 5: "batch size of 128 examples, momentum of 0.9, and weight decay of 0.0005";
# "The learning rate was ... initialized at 0.01". Used by optim.PaperSGD and
# TrainConfig; here because this module imports without Keras (and so without TensorFlow).
PAPER_LEARNING_RATE = 0.01
PAPER_MOMENTUM = 0.9
PAPER_WEIGHT_DECAY = 0.0005


class ConfigMixin:
    """`replace`, `to_dict` and `to_json` for the frozen config dataclasses."""

    def replace(self, **changes: Any) -> Any:
        """Returns a copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def check_fields(cls: type, values: dict[str, Any]) -> None:
    """Raises a one-line `ValueError` naming keys of `values` that `cls` has no field for."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"Unknown {cls.__name__} field(s) {unknown}; valid fields are {sorted(names)}."
        )


@dataclasses.dataclass(frozen=True)
class AlexNetConfig(ConfigMixin):
    """Architecture of the network. Defaults are the paper's (Section 3, Figure 2).

    Filter and unit counts are totals over all towers; each tower holds
    `count // num_towers` of them, as each GPU held half in the paper.
    """

    # Section 2: ILSVRC has 1000 classes.
    num_classes: int = 1000
    # Section 3.5 says 224x224 inputs, but conv1 (11x11, stride 4) must give 55x55, which 224
    # only does if the last filter row/column hangs 3 pixels over the bottom/right edge (zero
    # padding there), as the authors' cuda-convnet did. 227 is Caffe's choice: no padding.
    # Any size works: conv1 is padded bottom/right just enough for the last window to fit.
    input_size: int = 224
    # Section 3.2: the kernels are split over two GPUs ("towers").
    num_towers: int = 2
    # Section 3.5: 96, 256, 384, 384 and 256 kernels in conv1..conv5.
    conv_filters: tuple[int, ...] = (96, 256, 384, 384, 256)
    # Section 3.5: 11x11 (stride 4), 5x5, 3x3, 3x3, 3x3 kernels.
    conv_kernel_sizes: tuple[int, ...] = (11, 5, 3, 3, 3)
    conv1_stride: int = 4
    # Section 3.5: the fully-connected hidden layers have 4096 neurons each.
    fc_units: tuple[int, ...] = (4096, 4096)
    # Section 3.1: ReLU; Figure 1 compares tanh.
    activation: str = "relu"
    # Section 3.3: k=2, n=5, alpha=1e-4, beta=0.75, after ReLU in conv1 and conv2 (3.5).
    use_lrn: bool = True
    lrn_depth_radius: int = 2  # n = 5 = 2 * radius + 1
    lrn_bias: float = 2.0
    lrn_alpha: float = 1e-4
    lrn_beta: float = 0.75
    # Sections 3.2/3.5 and Figure 2: the towers exchange activations only at conv3 and the
    # fully-connected layers, and the authors' code normalised each GPU's maps on that GPU,
    # so by default the LRN window stops at the tower boundary. True normalises over all N
    # maps of the layer (one reading of the formula's N in 3.3).
    lrn_across_towers: bool = False
    # Section 3.5 normalises, then pools (conv1 -> ReLU -> LRN -> pool). Caffe's CaffeNet
    # (bvlc_reference_caffenet) swapped the two in conv1 and conv2, so its trained weights
    # need True to give the network they were trained in; the parameters are the same.
    pool_before_lrn: bool = False
    # Section 3.4: overlapping pooling, z=3, s=2 (the ablation is z=2, s=2).
    pool_size: int = 3
    pool_stride: int = 2
    # Section 4.2: dropout 0.5 in the first two fully-connected layers.
    dropout_rate: float = 0.5
    # Section 6: "1 CNN*" adds a sixth conv layer over the last pooling layer. The paper gives
    # no size; 0 means no such layer, else its total kernel count (3x3, same padding, per tower).
    conv6_filters: int = 0
    # Section 7: "removing any of the middle layers results in a loss of about 2%" of top-1.
    # 0 keeps every layer; 3 or 4 leaves that conv layer out (conv4 then reads conv3's input,
    # all of conv2's maps; conv5 reads conv3's output).
    removed_conv: int = 0
    # Section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7; 0 elsewhere.
    weight_init_std: float = 0.01
    bias_one_layers: tuple[str, ...] = ("conv2", "conv4", "conv5", "fc6", "fc7")
    # Section 3.5: fc8 feeds a softmax. None gives logits.
    classifier_activation: str | None = "softmax"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def conv1_padding(self) -> int:
        """Zero rows/columns added at the bottom/right so the last conv1 window fits."""
        return (-(self.input_size - self.conv_kernel_sizes[0])) % self.conv1_stride

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AlexNetConfig:
        """Builds a config from `to_dict()` output; unknown keys are a `ValueError`."""
        check_fields(cls, values)
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)


# The paper's ablations (Sections 3.1-3.4, 4.2, 6): one switch each.
ABLATIONS: dict[str, dict[str, Any]] = {
    # Section 3.2: one GPU, half the kernels in each conv layer. The original paper's footnote 2
    # says conv5 and the fully-connected layers were *not* halved, to keep the parameter count
    # close; we follow it.
    "one_tower_half": dict(num_towers=1, conv_filters=(48, 128, 192, 192, 256)),
    "one_tower_full": dict(num_towers=1),
    "no_lrn": dict(use_lrn=False),
    "non_overlapping_pool": dict(pool_size=2, pool_stride=2),
    "tanh": dict(activation="tanh"),
    "no_dropout": dict(dropout_rate=0.0),
    "conv6": dict(conv6_filters=256),
    "no_conv3": dict(removed_conv=3),
    "no_conv4": dict(removed_conv=4),
}


def ablation(name: str, base: AlexNetConfig | None = None, **overrides: Any) -> AlexNetConfig:
    """Returns `base` (the paper's config by default) with the named ablation applied.

    Raises:
      ValueError: if `name` is not one of `ABLATIONS`.
    """
    if name not in ABLATIONS:
        raise ValueError(f"Unknown ablation {name!r}; choose one of {sorted(ABLATIONS)}.")
    base = base or AlexNetConfig()
    return base.replace(**{**ABLATIONS[name], **overrides})


def _validate(c: AlexNetConfig) -> None:
    def fail(msg: str) -> None:
        raise ValueError(f"Invalid AlexNetConfig: {msg}")

    if c.num_classes < 2:
        fail(f"num_classes={c.num_classes} must be at least 2.")
    if c.num_towers < 1:
        fail(f"num_towers={c.num_towers} must be at least 1.")
    if len(c.conv_filters) != 5 or len(c.conv_kernel_sizes) != 5:
        fail("conv_filters and conv_kernel_sizes need 5 entries (conv1..conv5).")
    if len(c.fc_units) != 2:
        fail(f"fc_units={c.fc_units} needs 2 entries (fc6, fc7).")
    counts = [*c.conv_filters, *c.fc_units] + ([c.conv6_filters] if c.conv6_filters else [])
    for n in counts:
        if n < 1 or n % c.num_towers:
            fail(f"filter/unit count {n} cannot be split evenly over {c.num_towers} towers.")
    if c.activation not in ACTIVATIONS:
        fail(f"unknown activation {c.activation!r}; use one of {ACTIVATIONS}.")
    if c.classifier_activation not in (None, "softmax"):
        fail(f"classifier_activation={c.classifier_activation!r} must be 'softmax' or None.")
    if not 0.0 <= c.dropout_rate < 1.0:
        fail(f"dropout_rate={c.dropout_rate} must be in [0, 1).")
    if c.pool_size < 1 or c.pool_stride < 1 or c.conv1_stride < 1:
        fail("pool_size, pool_stride and conv1_stride must be positive.")
    if c.lrn_depth_radius < 0:
        fail(f"lrn_depth_radius={c.lrn_depth_radius} must be >= 0.")
    if c.conv6_filters < 0:
        fail(f"conv6_filters={c.conv6_filters} must be >= 0.")
    if c.removed_conv not in (0, 3, 4):
        fail(f"removed_conv={c.removed_conv} must be 0 (none), 3 or 4 (a middle conv layer).")
    if c.weight_init_std <= 0:
        fail(f"weight_init_std={c.weight_init_std} must be positive.")
    # conv1 (valid, after overhang padding), then three poolings must leave at least 1 pixel.
    size = (c.input_size + c.conv1_padding - c.conv_kernel_sizes[0]) // c.conv1_stride + 1
    for _ in range(3):
        size = (size - c.pool_size) // c.pool_stride + 1
    if c.input_size < c.conv_kernel_sizes[0] or size < 1:
        fail(f"input_size={c.input_size} is too small for this network.")
