"""Fine-tuning through the custom loop and model.fit, and class subsets of the data."""

import json

import keras
import numpy as np
import pytest
from helpers import TINY_MODEL

from keras_alexnet.data import open_source
from keras_alexnet.data.fashion_mnist import load_fashion_mnist
from keras_alexnet.data.subset import open_subset, subset_source
from keras_alexnet.fit import fit
from keras_alexnet.model import build_alexnet
from keras_alexnet.overrides import apply_overrides
from keras_alexnet.presets import preset
from keras_alexnet.train import train
from keras_alexnet.train_config import TrainConfig

NEW = (5, 6, 7, 8, 9)
FROZEN = {"conv1_t0", "conv1_t1", "conv2_t0", "conv2_t1"}


@pytest.fixture(scope="module")
def raw():
    return load_fashion_mnist()


@pytest.fixture(scope="module")
def source():
    return open_source("fashion_mnist", image_size=preset("tiny").data_image_size)


@pytest.fixture(scope="module")
def new_classes(source):
    return subset_source(source, NEW, train_per_class=20, holdout=50)


@pytest.fixture(scope="module")
def init_file(tmp_path_factory):
    """A saved 10-class network (seed 1) to fine-tune on 5 classes."""
    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("init") / "model.keras"
    build_alexnet(TINY_MODEL).save(path)
    return path


def weights(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()]
            for layer in model.layers if layer.weights}


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def config(tmp_path, init_file, **changes):
    values = dict(work_dir=str(tmp_path), model=TINY_MODEL.replace(num_classes=5),
                  data_classes=NEW, train_per_class=20, validation_holdout=50,
                  init_from=str(init_file), freeze=("conv1", "conv2"), epochs=1,
                  steps_per_epoch=4, eval_steps=2)
    values.update(changes)
    return preset("tiny").replace(**values)


def check_finetuned(model, init, trained_fc8=True):
    """Frozen layers bit-identical to the init, every other one moved, fc8 new."""
    init_w, got = weights(init), weights(model)
    assert got["fc8"][0].shape == (32, 5)
    for name, values in got.items():
        if name == "fc8":
            continue
        assert same(values, init_w[name]) == (name in FROZEN), name


def test_subset_picks_and_relabels_against_numpy(raw, source, new_classes):
    classes = (7, 5, 9)
    sub = subset_source(source, classes, train_per_class=3)
    x, y = raw["train"]
    sx, sy = sub.data["train"]
    assert sub.info.num_classes == 3 and sub.info.num_train == 9
    assert sub.info.class_names == ("Sneaker", "Sandal", "Ankle boot")
    np.testing.assert_array_equal(np.bincount(sy), [3, 3, 3])
    # Every chosen image is a training image of the class its new label stands for.
    for image, label in zip(sx, sy, strict=True):
        rows = np.flatnonzero((x == image).all(axis=(1, 2)))
        assert len(rows) and classes[label] in set(y[rows].tolist())
    # The test split: every test image of those classes, in data order, relabelled.
    tx, ty = raw["eval"]
    pick = np.isin(ty, classes)
    np.testing.assert_array_equal(sub.data["eval"][0], tx[pick])
    np.testing.assert_array_equal(sub.data["eval"][1], [classes.index(c) for c in ty[pick]])
    # The same images for every call (the choice is seeded, not the run's seed).
    np.testing.assert_array_equal(subset_source(source, classes, 3).data["train"][0], sx)
    # Through the pipeline: labels come out remapped.
    labels = np.concatenate([b[1] for b in sub.eval_dataset(500, 67)])
    np.testing.assert_array_equal(labels, sub.data["eval"][1])
    # With a holdout: held-out images of the classes only, disjoint from the training ones.
    hx, hy = new_classes.data["eval"]
    assert len(hy) == 50 and np.bincount(hy).tolist() == [10] * 5
    assert np.bincount(new_classes.data["train"][1]).tolist() == [20] * 5
    flat = {img.tobytes() for img in new_classes.data["train"][0]}
    assert not flat & {img.tobytes() for img in hx}


def test_subset_refusals(source):
    with pytest.raises(ValueError, match="exceeds the 6000 training images"):
        subset_source(source, (0, 1), train_per_class=7000)
    with pytest.raises(ValueError, match="classes 0..9"):
        subset_source(source, (3, 10))
    with pytest.raises(ValueError, match="'fashion_mnist'"):
        open_subset("folder:/nowhere", classes=(0, 1), train_per_class=None)
    with pytest.raises(ValueError, match="data_classes=\\(1, 1\\)"):
        TrainConfig(data_classes=(1, 1))
    with pytest.raises(ValueError, match="without init_from"):
        TrainConfig(freeze=("conv1",))


@pytest.mark.slow
def test_train_finetunes_from_another_num_classes(tmp_path, init_file, new_classes):
    init = keras.saving.load_model(init_file)
    result = train(config(tmp_path, init_file), source=new_classes)
    assert result.step == 4
    check_finetuned(result.model, init)
    # model.keras is a plain AlexNet: loads with safe_mode, every layer trainable again.
    saved = keras.saving.load_model(result.model_path, safe_mode=True)
    check_finetuned(saved, init)
    assert all(layer.trainable for layer in saved.layers)
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["init_from"] == str(init_file) and recorded["freeze"] == ["conv1", "conv2"]
    assert recorded["data_classes"] == list(NEW) and recorded["train_per_class"] == 20
    assert TrainConfig.from_dict(recorded) == config(tmp_path, init_file)


@pytest.mark.slow
def test_unfrozen_layers_start_from_the_init(tmp_path, init_file, new_classes):
    # A learning rate too small to move a weight: the state after training is the start.
    init = weights(keras.saving.load_model(init_file))
    result = train(config(tmp_path, init_file, freeze=(), learning_rate=1e-30, epochs=1,
                          steps_per_epoch=1), source=new_classes)
    for name, values in weights(result.model).items():
        if name != "fc8":
            for a, b in zip(values, init[name], strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-20, err_msg=name)


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint_not_the_init(tmp_path, init_file, new_classes):
    whole = train(config(tmp_path / "whole", init_file, epochs=2), source=new_classes)

    class Crash(Exception):
        pass

    def crash(record):
        if record["step"] == 6:
            raise Crash

    path = tmp_path / "init.keras"
    path.write_bytes(init_file.read_bytes())
    cut = config(tmp_path / "cut", path, epochs=2)
    with pytest.raises(Crash):
        train(cut, source=new_classes, on_step_end=crash)  # checkpoint at step 4
    # Another network under the init's name: a resume that read it would train from it.
    keras.utils.set_random_seed(2)
    build_alexnet(TINY_MODEL).save(path)
    resumed = train(cut, source=new_classes)
    assert resumed.step == whole.step == 8
    for name, values in weights(whole.model).items():
        assert same(values, weights(resumed.model)[name]), name


@pytest.mark.slow
def test_fit_finetunes_and_freezes(tmp_path, init_file, new_classes):
    init = keras.saving.load_model(init_file)
    model, history = fit(config(tmp_path, init_file, deterministic=False), source=new_classes)
    assert len(history.history["loss"]) == 1
    check_finetuned(model, init)


@pytest.mark.slow
def test_same_num_classes_keeps_fc8(tmp_path, init_file, source):
    init = keras.saving.load_model(init_file)
    c = config(tmp_path, init_file, model=TINY_MODEL, data_classes=None, train_per_class=None,
               validation_holdout=0, freeze=("conv1", "conv2", "conv3", "conv4", "conv5", "fc6",
                                             "fc7"), learning_rate=1e-30, steps_per_epoch=1)
    model = train(c, source=source).model
    np.testing.assert_allclose(model.get_layer("fc8").kernel, init.get_layer("fc8").kernel,
                               rtol=1e-6)


def test_same_num_classes_of_other_classes_gets_a_fresh_fc8(tmp_path, source):
    """Classes 0-4 -> 5-9 (5 each): the old classifier's rows mean other classes; not copied."""
    from keras_alexnet.transfer import init_from_file

    keras.utils.set_random_seed(2)
    pretrained = tmp_path / "pretrain"
    pretrained.mkdir()
    build_alexnet(TINY_MODEL.replace(num_classes=5)).save(pretrained / "model.keras")
    (pretrained / "config.json").write_text(
        preset("tiny").replace(model=TINY_MODEL.replace(num_classes=5),
                               data_classes=(0, 1, 2, 3, 4)).to_json())
    model = build_alexnet(TINY_MODEL.replace(num_classes=5))
    assert "fc8" not in init_from_file(model, pretrained, data_classes=NEW)
    assert "fc8" in init_from_file(model, pretrained, data_classes=(0, 1, 2, 3, 4))
    assert "fc7_t0" in init_from_file(model, pretrained, data_classes=NEW)


def one_line(fn):
    with pytest.raises(ValueError) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_bad_init_from_and_freeze_are_one_line_errors(tmp_path, init_file, new_classes):
    def run(**changes):
        return lambda: train(config(tmp_path / "bad", init_file, **changes), source=new_classes)

    assert "no such file" in one_line(run(init_from=str(tmp_path / "none.keras")))
    assert "holds no model.keras" in one_line(run(init_from=str(tmp_path)))
    assert "pass a .keras" in one_line(run(init_from=str(tmp_path / "x.txt")))
    assert "freeze='conv9'" in one_line(run(freeze=("conv9",)))
    assert "freeze='fc8'" in one_line(run(freeze=("fc8",)))
    # Another architecture: the message says which model fields to set, as overrides.
    wide = TINY_MODEL.replace(num_classes=5, fc_units=(64, 64))
    message = one_line(run(model=wide))
    sets = message.split("set ", 1)[1].rstrip(".").split()
    assert sets == ["model.fc_units=32,32"]
    assert apply_overrides(config(tmp_path, init_file, model=wide), sets).model == (
        TINY_MODEL.replace(num_classes=5))
    assert not (tmp_path / "bad" / "config.json").exists()


def test_overrides_parse_the_new_fields():
    c = apply_overrides(preset("tiny"), ["init_from=runs/a", "freeze=conv1,conv2",
                                         "data_classes=5,6,7", "train_per_class=100"])
    assert c.freeze == ("conv1", "conv2") and c.data_classes == (5, 6, 7)
    assert c.train_per_class == 100 and c.init_from == "runs/a"
