"""Distribution: the paper's towers, MirroredStrategy, MultiWorkerMirroredStrategy, TF_CONFIG.

Every mode is checked against plain single-device training of the same tiny network on the
same data (tests/dist_worker.py): equal losses and weights within float tolerance.
"""

import json
import logging
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import dist_worker
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, SCRIPTS, python_env, run_python

from keras_alexnet import distribute as kd
from keras_alexnet.model import build_alexnet
from keras_alexnet.optim import PaperSGD
from keras_alexnet.overrides import apply_overrides
from keras_alexnet.presets import preset
from keras_alexnet.run_files import read_train_log
from keras_alexnet.train import train
from keras_alexnet.train_config import TrainConfig

WORKER = str(Path(__file__).with_name("dist_worker.py"))
TOWERS = ("/CPU:0", "/CPU:1")
STEPS, BATCH = 4, 8
# Seconds a worker process may take at most; far above a normal run (~20 s on 2 cores).
PROCESS_TIMEOUT = 150
# The workers' peer timeout (TrainConfig.peer_timeout_seconds, 120 s by default): long enough
# for a loaded 2-core machine to start both workers and trace their first step, short enough
# that a test of a dead or missing peer ends within seconds.
PEER_TIMEOUT_S = 15
# The test of a killed peer waits this long for the survivor to notice (heartbeats, the
# collective's deadline): shorter, since both workers have started and traced by then; still
# long enough for a loaded machine to start the restarted pair.
LOST_PEER_TIMEOUT_S = 8


def assert_same_run(got: dict, want: dict, steps: int | None = None) -> None:
    """Same per-step losses and the same weights and velocities, within float tolerance."""
    if steps is not None:
        np.testing.assert_allclose(got["losses"], want["losses"][-steps:], rtol=1e-5)
    assert int(got["step"]) == int(want["step"])
    keys = sorted(k for k in want if k not in ("losses", "step"))
    assert sorted(k for k in got if k not in ("losses", "step")) == keys
    for k in keys:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=2e-6, err_msg=k)


_REFERENCE: dict[int, dict] = {}


def reference(steps: int) -> dict:
    """Single-device training (default strategy, no placement) for `steps` steps, cached."""
    if steps not in _REFERENCE:
        _REFERENCE[steps] = dist_worker.run("single", None, steps, BATCH)
    return _REFERENCE[steps]


# ---------------------------------------------------------------- strategies and helpers


def test_make_strategy_single_towers_mirrored():
    strategy, towers = kd.make_strategy("single", num_towers=2)
    assert strategy is tf.distribute.get_strategy() and towers is None
    strategy, towers = kd.make_strategy("towers", num_towers=2)
    assert [t.split("/")[-1] for t in towers] == ["device:CPU:0", "device:CPU:1"]
    strategy, _ = kd.make_strategy("mirrored", num_towers=2)
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == 2
    with pytest.raises(ValueError, match="Unknown mode 'pipeline'"):
        kd.make_strategy("pipeline", num_towers=2)


def test_towers_fall_back_to_one_device_with_one_log_line(caplog):
    with caplog.at_level(logging.INFO):
        strategy, towers = kd.make_strategy("towers", num_towers=4)
    assert towers is None and strategy.num_replicas_in_sync == 1
    lines = [r.getMessage() for r in caplog.records if "towers mode" in r.getMessage()]
    assert len(lines) == 1 and "running on one device" in lines[0], lines


def test_per_replica_batch_size_and_chief_dirs(tmp_path):
    strategy, _ = kd.make_strategy("mirrored", num_towers=2)
    assert kd.per_replica_batch_size(128, strategy) == 64
    with pytest.raises(ValueError, match="global batch size 7 must be a positive multiple"):
        kd.per_replica_batch_size(7, strategy)
    assert kd.is_chief(strategy) and kd.is_chief(tf.distribute.get_strategy())
    write_dir, is_temp = kd.worker_dirs(str(tmp_path / "run"), strategy)
    assert (write_dir, is_temp) == (str(tmp_path / "run"), False)
    kd.cleanup_worker_dir(write_dir, is_temp)
    assert (tmp_path / "run").is_dir()  # the chief's folder is never deleted


def test_distribute_dataset_gives_each_step_the_same_global_batch():
    source = dist_worker.NoiseSource()

    def fn(batch_size, num_shards, shard_index):
        return source.train_dataset(batch_size, 67, seed=3, augment=False,
                                    num_shards=num_shards, shard_index=shard_index)

    whole = next(iter(fn(BATCH, 1, 0)))[1].numpy()
    strategy, _ = kd.make_strategy("mirrored", num_towers=2)
    per_replica = next(iter(kd.distribute_dataset(strategy, fn, BATCH)))[1]
    parts = [v.numpy() for v in strategy.experimental_local_results(per_replica)]
    assert [len(p) for p in parts] == [BATCH // 2] * 2
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # Two workers with one replica each read strided shards: together, the same examples.
    shards = [next(iter(fn(BATCH // 2, 2, i)))[1].numpy() for i in range(2)]
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.sort(whole))


# ---------------------------------------------------------------- towers (Section 3.2)


def test_towers_trace_places_each_towers_convolutions_and_slots_on_its_device():
    """Forward and backward convolutions, weights and momentum slots: all on the tower's device."""
    model = build_alexnet(dist_worker.TINY, tower_devices=TOWERS)
    optimizer = PaperSGD()
    # Built eagerly, as the training loop does: slots created while a tf.function traces
    # lose their colocation and land on the default device.
    optimizer.build(model.trainable_variables)
    x = tf.zeros((2, 67, 67, 3))
    y = tf.zeros((2,), tf.int32)

    @tf.function
    def step(images, labels):
        logits = model(images, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = kd.colocated_gradients(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    graph = step.get_concrete_function(x, y).graph
    convs = [op for op in graph.get_operations() if op.type.startswith("Conv2D")]
    for t, device in enumerate(TOWERS):
        mine = [op for op in convs if re.search(rf"/conv\d_t{t}(_\d+)?/", op.name)]
        # conv1..conv5 of tower t, forward and the gradients' Conv2DBackprop* ops.
        assert len(mine) >= 5 + 4 + 5, [(op.type, op.name) for op in convs]
        assert all(op.device == f"/device:{device[1:]}" for op in mine), [
            (op.name, op.device) for op in mine]
    assert {op.device for op in convs} == {"/device:CPU:0", "/device:CPU:1"}
    step(x, y)
    for v, slot in zip(model.trainable_variables, optimizer.velocities):
        want = "CPU:1" if "_t1/" in v.path else "CPU:0"
        assert v.value.device.endswith(want), (v.path, v.value.device)
        assert slot.value.device == v.value.device, (v.path, slot.value.device)


def test_towers_training_equals_single_device_training():
    strategy, towers = kd.make_strategy("towers", num_towers=2)
    got = dist_worker.run("towers", None, STEPS, BATCH, strategy=strategy, tower_devices=towers)
    assert_same_run(got, reference(STEPS), STEPS)


# ---------------------------------------------------------------- mirrored


@pytest.mark.slow
def test_mirrored_two_replicas_equal_one_device_with_the_global_batch():
    strategy, _ = kd.make_strategy("mirrored", num_towers=2)
    got = dist_worker.run("mirrored", None, STEPS, BATCH, strategy=strategy)
    assert_same_run(got, reference(STEPS), STEPS)


@pytest.mark.slow
def test_train_entry_point_mirrored_equals_default_strategy(tmp_path):
    """keras_alexnet.train.train itself, given a MirroredStrategy, learns what one device does."""
    config = TrainConfig(model=dist_worker.TINY.replace(classifier_activation="softmax"),
                         data=None, batch_size=BATCH, epochs=1, steps_per_epoch=STEPS,
                         eval_steps=1, progress_bar=False, log_every_steps=1)
    results = {}
    for mode in ("single", "mirrored"):
        strategy, _ = kd.make_strategy(mode, num_towers=2)
        work_dir = tmp_path / mode
        result = train(config.replace(work_dir=str(work_dir)), source=dist_worker.NoiseSource(),
                       strategy=strategy)
        losses = [r["loss"] for r in read_train_log(work_dir)]
        results[mode] = (losses, result.model.get_weights())
    np.testing.assert_allclose(results["mirrored"][0], results["single"][0], rtol=1e-5)
    assert len(results["single"][0]) == STEPS
    for got, want in zip(results["mirrored"][1], results["single"][1]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize("first,second", [("mirrored", "single"), ("single", "mirrored"),
                                          ("towers", "mirrored")])
def test_checkpoint_from_one_mode_resumes_in_another(tmp_path, first, second):
    """Half the steps in one mode, the rest in another: the uninterrupted run's result."""

    def run(mode, steps):
        strategy, towers = kd.make_strategy(mode, num_towers=2)
        return dist_worker.run(mode, str(tmp_path), steps, BATCH, checkpoint_every=2,
                               strategy=strategy, tower_devices=towers)

    run(first, STEPS // 2)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith(f"-{STEPS // 2}")
    assert_same_run(run(second, STEPS), reference(STEPS), STEPS - STEPS // 2)


# ---------------------------------------------------------------- TF_CONFIG


@pytest.mark.parametrize("text,message", [
    ("", "multi_worker mode needs TF_CONFIG"),
    ("{cluster: }", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "with 'cluster' and 'task' keys"),
    ('{"cluster": {"worker": ["a:1"]}}', "with 'cluster' and 'task' keys"),
    ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "no 'chief' and no 'worker'"),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}',
     "job(s) ['ps']"),
    ('{"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}',
     "2 chiefs"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "task index 2 is out of range"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "task type 'chief' is not a job"),
    ('{"cluster": {"worker": ["no-port"]}, "task": {"type": "worker", "index": 0}}',
     "'no-port' must be a 'host:port'"),
])
def test_bad_tf_config_is_a_one_line_value_error(monkeypatch, text, message):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        kd.make_strategy("multi_worker", num_towers=2)
    assert "\n" not in str(e.value)


def test_worker_zero_acts_as_chief_without_a_chief_job():
    config = kd.parse_tf_config(json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}))
    assert config.is_chief and config.chief == ("worker", 0)
    config = kd.parse_tf_config(json.dumps({"cluster": {"chief": ["c:3"], "worker": ["a:1"]},
                                            "task": {"type": "worker", "index": 0}}))
    assert not config.is_chief and config.peers() == [("chief", 0, "c:3")]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def test_chief_with_unreachable_peer_raises_within_the_timeout(monkeypatch):
    ports = free_ports(2)  # nobody listens on ports[1]
    monkeypatch.setenv("TF_CONFIG", tf_config(ports, 0))
    with pytest.raises(TimeoutError, match=f"worker 1 at 127.0.0.1:{ports[1]} not reachable"):
        kd.make_strategy("multi_worker", num_towers=2, peer_timeout_seconds=1.0)


def test_train_passes_peer_timeout_seconds_to_the_strategy(monkeypatch, tmp_path):
    """--set peer_timeout_seconds=... reaches the multi_worker strategy through train()."""
    ports = free_ports(2)  # nobody listens on ports[1]
    monkeypatch.setenv("TF_CONFIG", tf_config(ports, 0))
    config = apply_overrides(preset("tiny"), ["peer_timeout_seconds=1.5",
                                              f"work_dir={tmp_path}"])
    assert config.peer_timeout_seconds == 1.5
    # The error names the timeout it waited for: 1.5 s, not the 120 s default.
    with pytest.raises(TimeoutError, match=r"not reachable after 1\.5s;"):
        train(config, mode="multi_worker")


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_peer_timeout_must_be_positive(monkeypatch, seconds):
    with pytest.raises(ValueError, match=f"peer_timeout_seconds={seconds} must be positive"):
        TrainConfig(peer_timeout_seconds=seconds)
    monkeypatch.setenv("TF_CONFIG", tf_config(free_ports(2), 0))
    with pytest.raises(ValueError, match=f"peer_timeout_seconds={seconds} must be positive"):
        kd.make_strategy("multi_worker", num_towers=2, peer_timeout_seconds=seconds)


def test_split_cpu_keeps_a_matching_split_and_refuses_another():
    kd.split_cpu(2)  # conftest's two logical CPUs: nothing to do
    assert len(tf.config.list_logical_devices("CPU")) == 2
    with pytest.raises(ValueError, match=r"logical_cpus=3: TensorFlow has already set up 2 CPU"):
        kd.split_cpu(3)
    with pytest.raises(ValueError, match="logical_cpus=0 must be at least 1"):
        kd.split_cpu(0)
    with pytest.raises(ValueError, match="logical_cpus=0 must be at least 1"):
        TrainConfig(logical_cpus=0)


@pytest.mark.slow
def test_train_script_runs_mirrored_on_logical_cpus(tmp_path):
    """--set logical_cpus=2 lets --mode=mirrored run on a CPU-only machine: two replicas."""
    proc = run_python(
        SCRIPTS / "train.py", "--preset=tiny", "--mode=mirrored", "--set", "logical_cpus=2",
        "--set", "epochs=1", "--set", "steps_per_epoch=2", f"--work_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"one replica on each of \S*CPU:0, \S*CPU:1", proc.stderr), proc.stderr
    assert [e["step"] for e in read_train_log(tmp_path)] == [1, 2]


def test_lost_peer_message_names_the_peer_from_tensorflows_error():
    # The text TF 2.21 raised in the survivor when its peer was killed (UnavailableError).
    text = ("{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/"
            "replica:0/task:0/device:CPU:0}} Collective ops is aborted by: Error reported from "
            "/job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):"
            "\n/job:worker/replica:0/task:1\nThe tasks have crashed.")
    message = kd.lost_peer_message(text, "/w/checkpoints/ckpt-3", tf_config([5000, 5001], 0))
    assert message == ("Lost worker 1 at 127.0.0.1:5001: it stopped answering (no heartbeats); "
                       "the last checkpoint is /w/checkpoints/ckpt-3. Restart every worker "
                       "with the same command to resume.")
    assert "a peer" in kd.lost_peer_message("Deadline Exceeded", None, tf_config([1, 2], 1))


# ---------------------------------------------------------------- multi_worker processes


def start_worker(ports, index, tmp_path, *args, tag=""):
    env = python_env({"TF_CONFIG": tf_config(ports, index),
                      # Non-chief workers' temporary folders land here, where the test sees them.
                      "TMPDIR": str(tmp_path / "tmp")})
    log = open(tmp_path / f"worker{index}{tag}.log", "w")  # noqa: SIM115 - closed by caller
    proc = subprocess.Popen(
        [sys.executable, WORKER, f"--work_dir={tmp_path / 'work'}",
         f"--timeout_s={PEER_TIMEOUT_S}",
         f"--out={tmp_path / f'worker{index}.npz'}", *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_file = log
    return proc


def finish(proc, timeout=PROCESS_TIMEOUT) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    proc.log_file.close()
    text = Path(proc.log_file.name).read_text()
    return rc, text


@pytest.mark.slow
def test_two_workers_train_like_one_process_with_the_global_batch(tmp_path):
    (tmp_path / "tmp").mkdir()
    ports = free_ports(2)
    procs = [start_worker(ports, i, tmp_path, f"--steps={STEPS}", "--checkpoint_every=2")
             for i in range(2)]
    for proc in procs:
        rc, text = finish(proc)
        assert rc == 0, text[-3000:]
    results = [dict(np.load(tmp_path / f"worker{i}.npz")) for i in range(2)]
    assert_same_run(results[0], reference(STEPS), STEPS)
    for k in results[0]:
        np.testing.assert_array_equal(results[1][k], results[0][k], err_msg=k)
    # Only the chief's checkpoints are kept; worker 1's temporary folder is gone.
    assert tf.train.latest_checkpoint(str(tmp_path / "work" / "checkpoints")).endswith(
        f"-{STEPS}")
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.slow
def test_killed_worker_stops_the_other_and_both_resume_from_the_last_checkpoint(tmp_path):
    (tmp_path / "tmp").mkdir()
    ports = free_ports(2)
    steps = 6
    args = (f"--steps={steps}", "--checkpoint_every=2")
    args = (*args, f"--timeout_s={LOST_PEER_TIMEOUT_S}")  # the last --timeout_s counts
    procs = [start_worker(ports, i, tmp_path, *args, "--step_pause_s=1") for i in range(2)]
    chief_log = tmp_path / "worker0.log"
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while "SAVED 2" not in chief_log.read_text():
        assert procs[0].poll() is None and time.monotonic() < deadline, chief_log.read_text()
        time.sleep(0.2)
    procs[1].kill()
    finish(procs[1])
    # The survivor must notice (coordination heartbeats / collective timeout), not hang, and
    # say in one line whom it lost and how to resume.
    rc, text = finish(procs[0])
    assert rc == 1, text[-3000:]
    assert f"STEP {steps}" not in text
    latest = tf.train.latest_checkpoint(str(tmp_path / "work" / "checkpoints"))
    saved = int(latest.rsplit("-", 1)[1])
    assert 2 <= saved < steps
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"error: Lost worker 1 at 127.0.0.1:{ports[1]}: "), text[-3000:]
    assert f"the last checkpoint is {latest}" in last and "Traceback" not in text
    assert last.endswith("Restart every worker with the same command to resume.")

    ports = free_ports(2)
    procs = [start_worker(ports, i, tmp_path, *args, tag="_restart") for i in range(2)]
    for proc in procs:
        rc, text = finish(proc)
        assert rc == 0, text[-3000:]
        assert f"RESUMED {saved}" in text, text[-3000:]
    got = dict(np.load(tmp_path / "worker0.npz"))
    assert_same_run(got, reference(steps), steps - saved)


@pytest.mark.slow
def test_worker_that_cannot_reach_the_chief_exits_with_a_clear_error(tmp_path):
    (tmp_path / "tmp").mkdir()
    ports = free_ports(2)  # worker 0 (the chief) never starts
    proc = start_worker(ports, 1, tmp_path, "--steps=1", "--timeout_s=2")
    rc, text = finish(proc)
    assert rc not in (0, None), text[-3000:]
    assert "could not join the cluster led by worker 0 at 127.0.0.1" in text, text[-3000:]
