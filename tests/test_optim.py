"""PaperSGD against a NumPy transcription of Section 5's update rule."""

from __future__ import annotations

import json
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_python

from keras_alexnet.optim import (
    PAPER_LEARNING_RATE,
    PAPER_MOMENTUM,
    PAPER_WEIGHT_DECAY,
    PaperSGD,
)

# A conv kernel, a dense kernel and a bias: ranks 4, 2 and 1.
SHAPES = [(3, 3, 2, 4), (5, 3), (3,)]
# Large enough that decay (and where it lives) moves the weights far beyond float32 noise.
MOMENTUM, DECAY = 0.9, 0.05
LRS = [0.1, 0.1, 0.1, 0.02, 0.02, 0.02]  # the learning rate drops after step 3.


def _problem(seed: int = 0) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0.0, 1.0, s).astype("float32") for s in SHAPES]
    grads = [[rng.normal(0.0, 1.0, s).astype("float32") for s in SHAPES] for _ in LRS]
    return weights, grads


def _numpy_paper(weights, grads, lrs, momentum, wd, decayed):
    """Section 5: v <- m*v - wd*lr*w - lr*g ; w <- w + v (float64)."""
    w = [x.astype("float64") for x in weights]
    v = [np.zeros_like(x) for x in w]
    for step_grads, lr in zip(grads, lrs):
        for i, g in enumerate(step_grads):
            d = wd if decayed[i] else 0.0
            v[i] = momentum * v[i] - d * lr * w[i] - lr * g
            w[i] = w[i] + v[i]
    return w, v


def _numpy_decoupled(weights, grads, lrs, momentum, wd):
    """Keras SGD(weight_decay=wd): w <- w - lr*wd*w first, then v <- m*v - lr*g ; w <- w + v."""
    w = [x.astype("float64") for x in weights]
    v = [np.zeros_like(x) for x in w]
    for step_grads, lr in zip(grads, lrs):
        for i, g in enumerate(step_grads):
            w[i] = w[i] - lr * wd * w[i]
            v[i] = momentum * v[i] - lr * g
            w[i] = w[i] + v[i]
    return w, v


def _run_keras(optimizer, weights, grads, lrs, compiled: bool):
    variables = [keras.Variable(w, name=f"w{i}") for i, w in enumerate(weights)]
    optimizer.build(variables)

    def apply(step_grads):
        optimizer.apply(step_grads, variables)

    apply_fn = tf.function(apply) if compiled else apply
    for step_grads, lr in zip(grads, lrs):
        optimizer.learning_rate = lr  # as the schedule / a callback assigns it between steps
        apply_fn([tf.constant(g) for g in step_grads])
    return [v.numpy() for v in variables]


def _assert_all_close(actual, expected, rtol=1e-5, atol=1e-6):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def test_paper_defaults():
    opt = PaperSGD()
    assert (PAPER_LEARNING_RATE, PAPER_MOMENTUM, PAPER_WEIGHT_DECAY) == (0.01, 0.9, 0.0005)
    np.testing.assert_allclose(float(opt.learning_rate), PAPER_LEARNING_RATE)
    assert opt.momentum == PAPER_MOMENTUM
    assert opt.coupled_weight_decay == PAPER_WEIGHT_DECAY
    assert opt.decay_biases is False
    # Keras' decoupled decay must stay off, or the decay would be applied twice.
    assert opt.weight_decay is None


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_matches_numpy_with_learning_rate_change(compiled):
    weights, grads = _problem()
    opt = PaperSGD(learning_rate=LRS[0], momentum=MOMENTUM, weight_decay=DECAY)
    got = _run_keras(opt, weights, grads, LRS, compiled)
    expected_w, expected_v = _numpy_paper(weights, grads, LRS, MOMENTUM, DECAY, [1, 1, 0])
    _assert_all_close(got, expected_w)
    _assert_all_close([v.numpy() for v in opt.velocities], expected_v)
    assert int(opt.iterations.numpy()) == len(LRS)
    # The learning-rate change mattered: a constant rate lands elsewhere.
    constant, _ = _numpy_paper(weights, grads, [LRS[0]] * len(LRS), MOMENTUM, DECAY, [1, 1, 0])
    assert np.abs(got[1] - constant[1]).max() > 1e-2


def test_paper_defaults_match_numpy():
    weights, grads = _problem(seed=1)
    lrs = [PAPER_LEARNING_RATE] * 3 + [PAPER_LEARNING_RATE / 10] * 3
    got = _run_keras(PaperSGD(), weights, grads, lrs, compiled=True)
    expected, _ = _numpy_paper(
        weights, grads, lrs, PAPER_MOMENTUM, PAPER_WEIGHT_DECAY, [1, 1, 0]
    )
    _assert_all_close(got, expected)


def test_bias_decay_option():
    weights, grads = _problem(seed=2)
    zero_grads = [[np.zeros_like(g) for g in step] for step in grads]
    # With zero gradients only decay moves a variable: the bias stays put by default ...
    got = _run_keras(PaperSGD(0.1, MOMENTUM, DECAY), weights, zero_grads, LRS, compiled=False)
    np.testing.assert_array_equal(got[2], weights[2])
    assert np.abs(got[0] - weights[0]).max() > 1e-3
    # ... and shrinks, exactly as NumPy says, with decay_biases=True.
    opt = PaperSGD(0.1, MOMENTUM, DECAY, decay_biases=True)
    got = _run_keras(opt, weights, grads, LRS, compiled=False)
    expected, _ = _numpy_paper(weights, grads, LRS, MOMENTUM, DECAY, [1, 1, 1])
    _assert_all_close(got, expected)


def test_exclude_from_weight_decay_is_honoured():
    weights, grads = _problem(seed=3)
    variables = [keras.Variable(w) for w in weights]
    opt = PaperSGD(LRS[0], MOMENTUM, DECAY)
    opt.exclude_from_weight_decay(var_list=[variables[0]])
    opt.build(variables)
    assert [opt.is_decayed(v) for v in variables] == [False, True, False]
    for step_grads, lr in zip(grads, LRS):
        opt.learning_rate = lr
        opt.apply(step_grads, variables)
    expected, _ = _numpy_paper(weights, grads, LRS, MOMENTUM, DECAY, [0, 1, 0])
    _assert_all_close([v.numpy() for v in variables], expected)


def test_keras_sgd_weight_decay_is_a_different_rule():
    weights, grads = _problem(seed=4)
    ours = _run_keras(
        PaperSGD(LRS[0], MOMENTUM, DECAY, decay_biases=True), weights, grads, LRS, False
    )
    theirs = _run_keras(
        keras.optimizers.SGD(LRS[0], momentum=MOMENTUM, weight_decay=DECAY),
        weights, grads, LRS, False,
    )
    paper, _ = _numpy_paper(weights, grads, LRS, MOMENTUM, DECAY, [1, 1, 1])
    decoupled, _ = _numpy_decoupled(weights, grads, LRS, MOMENTUM, DECAY)
    _assert_all_close(theirs, decoupled)  # our reading of Keras' rule is right
    for o, t, p, d in zip(ours, theirs, paper, decoupled):
        assert np.abs(o - t).max() > 1e-2  # a real difference, not float noise
        np.testing.assert_allclose(o - t, p - d, rtol=1e-4, atol=1e-5)


def test_config_round_trip():
    opt = PaperSGD(learning_rate=0.03, momentum=0.8, weight_decay=0.001, decay_biases=True,
                   clipnorm=2.0, name="opt")
    config = opt.get_config()
    assert config["weight_decay"] == 0.001 and config["decay_biases"] is True
    clone = PaperSGD.from_config(config)
    assert clone.get_config() == config
    assert clone.weight_decay is None
    # Through Keras' registry, as model saving does.
    serialized = keras.optimizers.serialize(opt)
    assert serialized["registered_name"] == "keras_alexnet>PaperSGD"
    again = keras.optimizers.deserialize(json.loads(json.dumps(serialized)))
    assert isinstance(again, PaperSGD) and again.get_config() == config


@pytest.mark.parametrize(
    "kwargs",
    [dict(momentum=1.5), dict(momentum=-0.1), dict(weight_decay=-1e-4),
     dict(weight_decay="0.1"), dict(momentum=True)],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="must be"):
        PaperSGD(**kwargs)


def _tiny_model_and_data(seed: int):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((6,), name="features"),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="predictions"),
        ],
        name="tiny",
    )
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
    return model, x, y


def test_model_fit_and_keras_file_round_trip(tmp_path):
    model, x, y = _tiny_model_and_data(seed=5)
    model.compile(optimizer=PaperSGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert int(model.optimizer.iterations.numpy()) == 16
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, PaperSGD)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Continuing from the file is continuing the same run (same velocities, same weights).
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_tf_train_checkpoint_restores_velocities(tmp_path):
    model, x, y = _tiny_model_and_data(seed=6)
    opt = PaperSGD(learning_rate=0.05)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    opt.learning_rate = 0.005
    path = tf.train.Checkpoint(model=model, optimizer=opt).save(str(tmp_path / "ckpt"))

    fresh, _, _ = _tiny_model_and_data(seed=99)  # different initial weights
    fresh_opt = PaperSGD()
    fresh_opt.build(fresh.trainable_variables)
    assert len(fresh_opt.velocities) == len(opt.velocities) == 4
    tf.train.Checkpoint(model=fresh, optimizer=fresh_opt).restore(path).assert_consumed()
    np.testing.assert_allclose(float(fresh_opt.learning_rate), 0.005)
    assert int(fresh_opt.iterations.numpy()) == int(opt.iterations.numpy()) == 4
    assert any(np.abs(v.numpy()).max() > 0 for v in opt.velocities)
    for a, b in zip(opt.velocities, fresh_opt.velocities):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


_BACKEND_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import keras
    import numpy as np
    from keras_alexnet.optim import PaperSGD

    assert keras.backend.backend() == os.environ["KERAS_BACKEND"], keras.backend.backend()
    data = np.load(sys.argv[1])
    n_vars, lrs = int(data["n_vars"]), [float(x) for x in data["lrs"]]
    weights = [data[f"w{i}"] for i in range(n_vars)]
    grads = [[data[f"g{s}_{i}"] for i in range(n_vars)] for s in range(len(lrs))]
    m, wd = float(data["momentum"]), float(data["decay"])

    # Eager, stateful: what a custom loop does.
    variables = [keras.Variable(w) for w in weights]
    opt = PaperSGD(lrs[0], m, wd)
    opt.build(variables)
    for step_grads, lr in zip(grads, lrs):
        opt.learning_rate = lr
        opt.apply(step_grads, variables)
    eager = [keras.ops.convert_to_numpy(v.value).tolist() for v in variables]
    if keras.backend.backend() != "jax":
        print("RESULT" + json.dumps({"eager": eager}))
        sys.exit(0)

    # Jitted, stateless: what model.fit does on JAX.
    import jax
    opt2 = PaperSGD(lrs[0], m, wd)
    opt2.build([keras.Variable(w) for w in weights])
    lr_index = [v.path for v in opt2.variables].index(opt2._learning_rate.path)
    opt_state = [v.value for v in opt2.variables]
    train_state = [jax.numpy.asarray(w) for w in weights]
    step = jax.jit(opt2.stateless_apply)
    for step_grads, lr in zip(grads, lrs):
        opt_state[lr_index] = jax.numpy.asarray(lr, dtype=opt_state[lr_index].dtype)
        train_state, opt_state = step(opt_state, step_grads, train_state)
    stateless = [np.asarray(w).tolist() for w in train_state]
    print("RESULT" + json.dumps({"eager": eager, "stateless": stateless}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_same_maths_on_other_backends(backend, tmp_path):
    weights, grads = _problem(seed=7)
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    arrays.update({f"g{s}_{i}": g for s, step in enumerate(grads) for i, g in enumerate(step)})
    np.savez(tmp_path / "problem.npz", n_vars=len(weights), lrs=np.array(LRS),
             momentum=MOMENTUM, decay=DECAY, **arrays)
    script = tmp_path / "backend_check.py"
    script.write_text(_BACKEND_SCRIPT)
    proc = run_python(script, tmp_path / "problem.npz",
                      env={"KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    result = json.loads(line[len("RESULT"):])
    expected, _ = _numpy_paper(weights, grads, LRS, MOMENTUM, DECAY, [1, 1, 0])
    _assert_all_close([np.array(w) for w in result["eager"]], expected)
    if backend == "jax":  # the jitted stateless path model.fit takes on JAX
        _assert_all_close([np.array(w) for w in result["stateless"]], expected)
