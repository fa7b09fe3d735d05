"""The paper's optimizer (Section 5): SGD with momentum and weight decay *inside* the velocity.

Section 5 updates every weight `w` with

    v <- 0.9 * v - 0.0005 * lr * w - lr * <dL/dw>
    w <- w + v

so the decay term is accumulated by the momentum like a gradient (it is the gradient of an L2
penalty `wd/2 * |w|^2`). Keras' own `SGD(weight_decay=...)` is *decoupled* decay: it shrinks
`w` by `lr * wd * w` before the momentum step and never feeds that shrink into the velocity,
which is a different trajectory. `PaperSGD` implements the paper's rule with `keras.ops` only,
so it runs on the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from keras_alexnet.config import PAPER_LEARNING_RATE, PAPER_MOMENTUM, PAPER_WEIGHT_DECAY


@keras.saving.register_keras_serializable(package="keras_alexnet")
class PaperSGD(keras.optimizers.Optimizer):
    """SGD with momentum and L2 weight decay folded into the velocity (Section 5).

    Update for each variable `w` with gradient `g` and learning rate `lr`:

        v <- momentum * v - d * weight_decay * lr * w - lr * g
        w <- w + v

    where `d` is 1 for decayed variables and 0 otherwise.

    Which variables are decayed: the paper's text decays every weight, but the authors'
    cuda-convnet layer parameters give weight decay (`wc`) to weights only; biases get a
    learning rate (`epsB`) and no decay. By default only variables of rank >= 2 (conv and
    dense kernels) are decayed; 1-D variables (biases, and scale/offset vectors of any
    normalisation layer; our LRN has none) are not. The rank rule needs no naming convention,
    so it also holds for layers we did not write.
    `decay_biases=True` decays every trainable variable, as the paper's text reads. Variables
    passed to Keras' `exclude_from_weight_decay()` (before the first step) are never decayed.

    Per-variable settings, as cuda-convnet's layer parameter files give them (`epsW`/`epsB`,
    `wc` per layer; Caffe's `lr_mult`/`decay_mult` do the same): `learning_rate_multipliers`
    and `weight_decays` map glob patterns of variable paths ("layer/variable", e.g. "*/bias",
    "conv*/kernel") to a multiplier of the learning rate and to the variable's decay
    coefficient. The first matching pattern decides; a variable no pattern matches keeps a
    multiplier of 1 and the rank rule above. A matched decay applies whatever the variable's
    rank (a locally connected layer's biases are 3-D).

    The learning rate is a variable: assign `optimizer.learning_rate = x` between steps (a
    schedule or callback does this); compiled train steps pick the new value up without
    retracing.

    Args:
      learning_rate: initial learning rate (Section 5: 0.01), or a Keras
        `LearningRateSchedule`.
      momentum: momentum in [0, 1] (Section 5: 0.9).
      weight_decay: L2 decay coefficient >= 0, applied inside the velocity (Section 5: 0.0005).
        Keras' base-class (decoupled) `weight_decay` is never applied.
      decay_biases: if True, decay 1-D variables (biases) too.
      learning_rate_multipliers: {variable path pattern: multiplier of the learning rate}.
      weight_decays: {variable path pattern: decay coefficient >= 0}.
      **kwargs: other base `keras.optimizers.Optimizer` arguments (`name`, `clipnorm`, ...).
    """

    def __init__(
        self,
        learning_rate: float = PAPER_LEARNING_RATE,
        momentum: float = PAPER_MOMENTUM,
        weight_decay: float = PAPER_WEIGHT_DECAY,
        decay_biases: bool = False,
        learning_rate_multipliers: Mapping[str, float] | None = None,
        weight_decays: Mapping[str, float] | None = None,
        name: str = "paper_sgd",
        **kwargs: Any,
    ) -> None:
        # The base class would apply its own *decoupled* decay if given a weight_decay; the
        # paper's decay is ours alone, so the base's must stay None.
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, int | float):
            raise ValueError(f"momentum={momentum!r} must be a number in [0, 1].")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum={momentum!r} must be in [0, 1].")
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float):
            raise ValueError(f"weight_decay={weight_decay!r} must be a number >= 0.")
        if float(weight_decay) < 0.0:
            raise ValueError(f"weight_decay={weight_decay!r} must be >= 0 (0 disables decay).")
        self.momentum = float(momentum)
        # Not `self.weight_decay`: that name belongs to the base class's decoupled decay.
        self.coupled_weight_decay = float(weight_decay)
        self.decay_biases = bool(decay_biases)
        self.learning_rate_multipliers = _patterns(learning_rate_multipliers,
                                                   "learning_rate_multipliers")
        self.weight_decays = _patterns(weight_decays, "weight_decays")

    def build(self, variables: list[Any]) -> None:
        """Creates one velocity slot per variable and fixes which variables are decayed."""
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")
        # Decided once, from the Keras variables, so the update step uses Python numbers
        # (no graph ops, identical on every backend).
        self._decays = tuple(self.decay_of(v) for v in variables)
        self._multipliers = tuple(_match(self.learning_rate_multipliers, v, 1.0)
                                  for v in variables)

    def is_decayed(self, variable: Any) -> bool:
        """Whether `variable` gets weight decay under this optimizer's rule."""
        return self.decay_of(variable) > 0.0

    def decay_of(self, variable: Any) -> float:
        """`variable`'s weight decay coefficient (0: not decayed)."""
        if not self._use_weight_decay(variable):  # Keras' exclude_from_weight_decay().
            return 0.0
        ranked = self.decay_biases or len(variable.shape) >= 2
        return _match(self.weight_decays, variable,
                      self.coupled_weight_decay if ranked else 0.0)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """v <- m*v - wd*lr*w - lr*g ; w <- w + v (Section 5)."""
        index = self._get_variable_index(variable)
        velocity = self.velocities[index]
        lr = ops.cast(learning_rate, variable.dtype)
        if self._multipliers[index] != 1.0:
            lr = ops.multiply(lr, ops.cast(self._multipliers[index], variable.dtype))
        step = ops.multiply(lr, ops.cast(gradient, variable.dtype))
        if self._decays[index]:
            wd = ops.cast(self._decays[index], variable.dtype)
            step = ops.add(step, ops.multiply(ops.multiply(wd, lr), variable))
        m = ops.cast(self.momentum, variable.dtype)
        self.assign(velocity, ops.subtract(ops.multiply(m, velocity), step))
        self.assign_add(variable, velocity)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                # Under the constructor's name; the base wrote its (always None) decay here.
                "weight_decay": self.coupled_weight_decay,
                "decay_biases": self.decay_biases,
                "learning_rate_multipliers": dict(self.learning_rate_multipliers),
                "weight_decays": dict(self.weight_decays),
            }
        )
        return config


def _patterns(values: Mapping[str, float] | None, name: str) -> dict[str, float]:
    """A checked copy of a {pattern: number >= 0} option."""
    out = {}
    for pattern, value in (values or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{name}[{pattern!r}]={value!r} must be a number >= 0.")
        out[str(pattern)] = float(value)
    return out


def _match(patterns: Mapping[str, float], variable: Any, default: float) -> float:
    """The value of the first pattern matching `variable`'s path, else `default`."""
    path = getattr(variable, "path", variable.name)
    return next((v for p, v in patterns.items() if fnmatch.fnmatchcase(path, p)), default)
