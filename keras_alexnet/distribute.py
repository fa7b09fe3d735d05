"""Where the network runs: one device, the paper's towers, or data parallel on one or N machines.

Four modes, one `make_strategy` call each:

- "single": TensorFlow's default strategy, no placement.
- "towers": the paper's model parallelism (Section 3.2): the default strategy, and tower *i*'s
  layers and weights on device *i* (`build_alexnet(..., tower_devices=...)`).
- "mirrored": `tf.distribute.MirroredStrategy`, one replica per local device.
- "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy` configured from `TF_CONFIG`.

Everything that has to agree between the training loop and the strategy (global vs per-replica
batch, input sharding, which worker writes files) lives here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import tensorflow as tf
from absl import logging

from keras_alexnet.train_config import MODES, TrainConfig  # MODES: readable without TF

# The only jobs MultiWorkerMirroredStrategy trains with; "ps"/"evaluator" belong to other setups.
_JOBS = ("chief", "worker")
# Seconds a multi-worker task waits for its peers and for one collective: TrainConfig's
# default (one source of truth; the reason is there).
DEFAULT_PEER_TIMEOUT_S = TrainConfig().peer_timeout_seconds


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """A validated `TF_CONFIG`: the cluster's addresses and this process's task."""

    cluster: dict[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def chief(self) -> tuple[str, int]:
        """The task that writes files and leads coordination: "chief" 0, else "worker" 0."""
        return ("chief", 0) if "chief" in self.cluster else ("worker", 0)

    @property
    def is_chief(self) -> bool:
        return (self.task_type, self.task_index) == self.chief

    @property
    def num_workers(self) -> int:
        return sum(len(addresses) for addresses in self.cluster.values())

    def peers(self) -> list[tuple[str, int, str]]:
        """(job, index, "host:port") of every task but this one."""
        return [
            (job, i, address)
            for job, addresses in self.cluster.items()
            for i, address in enumerate(addresses)
            if (job, i) != (self.task_type, self.task_index)
        ]


def parse_tf_config(text: str | None = None) -> ClusterConfig:
    """Validates `TF_CONFIG` (the environment variable unless `text` is given).

    Raises:
      ValueError: one line naming what is wrong and what to do.
    """
    if text is None:
        text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        raise ValueError(
            "multi_worker mode needs TF_CONFIG, e.g. '{\"cluster\": {\"worker\": "
            "[\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}'."
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}): {text[:80]!r}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError("TF_CONFIG must be a JSON object with 'cluster' and 'task' keys.")
    cluster, task = config["cluster"], config["task"]
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError("TF_CONFIG 'cluster' and 'task' must be JSON objects.")
    unknown = sorted(set(cluster) - set(_JOBS))
    if unknown:
        raise ValueError(
            f"TF_CONFIG cluster has job(s) {unknown}; multi_worker mode uses only {list(_JOBS)}."
        )
    jobs: dict[str, tuple[str, ...]] = {}
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(
                f"TF_CONFIG cluster job {job!r} must be a non-empty list of 'host:port'."
            )
        for address in addresses:
            _split_address(address)
        jobs[job] = tuple(addresses)
    if not jobs:
        raise ValueError("TF_CONFIG cluster has no 'chief' and no 'worker': list at least one.")
    if len(jobs.get("chief", ())) > 1:
        raise ValueError(f"TF_CONFIG lists {len(jobs['chief'])} chiefs; there can be only one.")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in jobs:
        raise ValueError(
            f"TF_CONFIG task type {task_type!r} is not a job of the cluster {sorted(jobs)}."
        )
    in_range = isinstance(index, int) and 0 <= index < len(jobs[task_type])
    if isinstance(index, bool) or not in_range:
        raise ValueError(
            f"TF_CONFIG task index {index!r} is out of range for job {task_type!r} "
            f"(0..{len(jobs[task_type]) - 1})."
        )
    return ClusterConfig(jobs, task_type, index)


def _split_address(address: object) -> tuple[str, int]:
    host, _, port = str(address).rpartition(":")
    if not isinstance(address, str) or not host or not port.isdigit():
        raise ValueError(f"TF_CONFIG address {address!r} must be a 'host:port' string.")
    return host.strip("[]"), int(port)


def wait_for_peers(config: ClusterConfig, timeout_s: float, poll_s: float = 0.5) -> None:
    """Returns once every other task accepts TCP connections; raises TimeoutError after timeout_s.

    TensorFlow's coordination leader waits for unregistered peers without a deadline, so the
    leader checks first that every peer is listening.
    """
    pending = config.peers()
    deadline = time.monotonic() + timeout_s
    while pending:
        still = []
        for job, index, address in pending:
            host, port = _split_address(address)
            try:
                with socket.create_connection((host, port), timeout=min(poll_s * 4, 5.0)):
                    pass
            except OSError:
                still.append((job, index, address))
        pending = still
        if pending and time.monotonic() > deadline:
            names = ", ".join(f"{job} {i} at {a}" for job, i, a in pending)
            raise TimeoutError(
                f"multi_worker: {names} not reachable after {timeout_s:g}s; start every task "
                "listed in TF_CONFIG (same cluster on each) and check host names and firewalls."
            )
        if pending:
            time.sleep(poll_s)


def make_strategy(
    mode: str,
    *,
    num_towers: int,
    devices: Sequence[str] | None = None,
    peer_timeout_seconds: float = DEFAULT_PEER_TIMEOUT_S,
) -> tuple[tf.distribute.Strategy, tuple[str, ...] | None]:
    """Returns `(strategy, tower_devices)` for a mode of `MODES`.

    Build the model and optimizer under `strategy.scope()` and pass `tower_devices` to
    `build_alexnet`. In "multi_worker" mode call this first thing in the program: TensorFlow
    must not have created its devices yet.

    Args:
      mode: one of `MODES`.
      num_towers: the model's `config.num_towers` (how many devices "towers" needs).
      devices: device names to use instead of the local GPUs (or CPUs when there are none).
      peer_timeout_seconds: multi_worker only: how long to wait for peers to come up and
        for one collective to finish (`TrainConfig.peer_timeout_seconds`).

    Raises:
      ValueError: unknown mode, a bad `TF_CONFIG`, or a `peer_timeout_seconds` <= 0.
      TimeoutError: multi_worker peers that do not come up within `peer_timeout_seconds`.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {MODES}.")
    if mode == "single":
        return tf.distribute.get_strategy(), None
    if mode == "towers":
        available = list(devices) if devices is not None else local_devices()
        if num_towers < 2 or len(available) < num_towers:
            logging.warning(
                "towers mode: %d tower(s) but %d device(s) (%s); running on one device.",
                num_towers, len(available), ", ".join(available) or "none",
            )
            return tf.distribute.get_strategy(), None
        return tf.distribute.get_strategy(), tuple(available[:num_towers])
    if mode == "mirrored":
        chosen = list(devices) if devices is not None else local_devices()
        logging.info("mirrored mode: one replica on each of %s.", ", ".join(chosen))
        # Collective all-reduce keys restart at the same number in every MirroredStrategy, so
        # a second strategy in one process (tests, notebooks) can clash with the first one's
        # collectives. CPU "devices" share memory: summing on one of them needs no keys.
        reduce = None
        if all("GPU" not in d.upper() for d in chosen):
            reduce = tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices=chosen, cross_device_ops=reduce), None
    return _multi_worker_strategy(peer_timeout_seconds), None


def local_devices() -> list[str]:
    """The local GPUs, else the logical CPUs (tests configure two), as device names."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _multi_worker_strategy(timeout_s: float) -> tf.distribute.Strategy:
    if timeout_s <= 0:
        raise ValueError(f"peer_timeout_seconds={timeout_s} must be positive; it is how long "
                         "to wait for the other workers.")
    config = parse_tf_config()
    chief_type, chief_index = config.chief
    leader = f"/job:{chief_type}/replica:0/task:{chief_index}"
    if config.is_chief:
        wait_for_peers(config, timeout_s)
    _configure_coordination(config, leader, timeout_s)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as e:
        address = config.cluster[chief_type][chief_index]
        raise TimeoutError(
            f"multi_worker: could not join the cluster led by {chief_type} {chief_index} at "
            f"{address} within {timeout_s:g}s ({type(e).__name__}); start every task listed "
            "in TF_CONFIG."
        ) from None
    logging.info(
        "multi_worker mode: %s %d of %d workers, %d replica(s) in sync.",
        config.task_type, config.task_index, config.num_workers, strategy.num_replicas_in_sync,
    )
    return strategy


def _configure_coordination(config: ClusterConfig, leader: str, timeout_s: float) -> None:
    """Sets deadlines on TensorFlow's coordination service (registration and heartbeats).

    MultiWorkerMirroredStrategy configures the service itself (without deadlines) unless it is
    already configured; there is no public API for these fields, hence the private module.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(config.cluster[job]))
        for job in _JOBS
        if job in config.cluster
    ]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=leader,
        cluster_register_timeout_in_ms=int(timeout_s * 1000),
        heartbeat_timeout_in_ms=int(min(timeout_s, 60.0) * 1000),
        coordinated_jobs=jobs,
    )


def colocated_gradients(loss: tf.Tensor, variables: Sequence) -> list[tf.Tensor | None]:
    """Gradients of `loss`, each computed on the device of the forward op it differentiates.

    The towers' backward pass must run where their forward pass ran, as on the paper's GPUs.
    `tf.GradientTape` leaves gradient ops without a device, so TensorFlow's placer puts every
    tower's backward pass on the default device; `tf.gradients` colocates each gradient op
    with its forward op. Call it inside a `tf.function` (or `strategy.run` within one) in
    place of `tape.gradient(loss, variables)`; it is correct in every mode.

    Raises:
      ValueError: when called eagerly (`tf.gradients` needs a graph).
    """
    if tf.executing_eagerly():
        raise ValueError("colocated_gradients needs graph mode: call it inside a tf.function "
                         "train step, or use tf.GradientTape for eager code.")
    # Keras variables wrap a tf.Variable in `.value`; tf.gradients wants the latter.
    return tf.gradients(loss, [getattr(v, "value", v) for v in variables])


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes checkpoints, logs and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    jobs = {job: tuple(addresses) for job, addresses in resolver.cluster_spec().as_dict().items()}
    return ClusterConfig(jobs, resolver.task_type, resolver.task_id).is_chief


def worker_dirs(work_dir: str, strategy: tf.distribute.Strategy) -> tuple[str, bool]:
    """`(write_dir, is_temp)`: `work_dir` for the chief, a fresh temporary folder for others.

    Every worker must take part in saving (saving reads mirrored variables collectively), but
    only the chief's files are kept; pass the result to `cleanup_worker_dir` when done.
    """
    if is_chief(strategy):
        os.makedirs(work_dir, exist_ok=True)
        return work_dir, False
    resolver = strategy.cluster_resolver
    prefix = f"keras_alexnet_{resolver.task_type}{resolver.task_id}_"
    return tempfile.mkdtemp(prefix=prefix), True


def cleanup_worker_dir(write_dir: str, is_temp: bool) -> None:
    """Deletes a non-chief worker's temporary folder; leaves the chief's untouched."""
    if is_temp:
        shutil.rmtree(write_dir, ignore_errors=True)


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The batch each replica sees; the loss is averaged over the *global* batch.

    Raises:
      ValueError: if the global batch does not split evenly over the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size < 1 or global_batch_size % replicas:
        raise ValueError(
            f"global batch size {global_batch_size} must be a positive multiple of the "
            f"{replicas} replicas in sync; change the batch size or the device count."
        )
    return global_batch_size // replicas


def distribute_dataset(
    strategy: tf.distribute.Strategy,
    dataset_fn: Callable[..., tf.data.Dataset],
    global_batch_size: int,
) -> tf.distribute.DistributedDataset:
    """Per-replica batches, each input pipeline (one per worker) reading its own shard.

    `dataset_fn(batch_size=..., num_shards=..., shard_index=...)` returns batches of
    `batch_size` examples from shard `shard_index` of `num_shards`; for example
    `functools.partial(source.train_dataset, input_size=224, seed=0)`. Replicas of one worker
    take consecutive batches, so step k's global batch is one process's step-k batch, images
    and augmentation alike, for any number of replicas and workers when the source has
    `strided_shards` (FashionMnistSource, FolderSource). TFRecordSource shards by file: other,
    equally valid batches.
    """
    per_replica = per_replica_batch_size(global_batch_size, strategy)

    def fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return dataset_fn(
            batch_size=per_replica,
            num_shards=context.num_input_pipelines,
            shard_index=context.input_pipeline_id,
        )

    return strategy.distribute_datasets_from_function(fn)


class PeerLostError(ConnectionError):
    """A multi-worker peer stopped answering mid-run; this worker stopped too."""


# TensorFlow's errors when a peer dies mid-collective (measured with TF 2.21: a killed peer
# gives UnavailableError "... tasks are unhealthy (stopped sending heartbeats):
# /job:worker/replica:0/task:1"); a peer that hangs runs into the collective's deadline.
_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.AbortedError)
_TASK_NAME = re.compile(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)")


@contextlib.contextmanager
def peer_failures(strategy: tf.distribute.Strategy,
                  last_checkpoint: Callable[[], str | None]) -> Iterator[None]:
    """Turns a multi-worker peer's death into one `PeerLostError` saying how to resume.

    Args:
      strategy: the run's strategy; other strategies' errors pass through unchanged.
      last_checkpoint: returns the newest checkpoint every worker would resume from.
    """
    try:
        yield
    except _PEER_ERRORS as e:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        raise PeerLostError(lost_peer_message(e.message, last_checkpoint())) from None


def lost_peer_message(error_text: str, last_checkpoint: str | None,
                      tf_config: str | None = None) -> str:
    """One line: which peer was lost (named in TensorFlow's error), the checkpoint, the fix."""
    config = parse_tf_config(tf_config)
    me = (config.task_type, config.task_index)
    named = []
    for job, index in _TASK_NAME.findall(error_text):
        task = (job, int(index))
        if task != me and task not in named:
            named.append(task)
    addresses = [f"{job} {i} at {config.cluster[job][i]}" for job, i in named
                 if job in config.cluster and i < len(config.cluster[job])]
    who = ", ".join(addresses) if addresses else "a peer"
    resume = (f"the last checkpoint is {last_checkpoint}" if last_checkpoint
              else "no checkpoint was saved yet")
    return (f"Lost {who}: it stopped answering ({_reason(error_text)}); {resume}. Restart "
            "every worker with the same command to resume.")


def _reason(error_text: str) -> str:
    if "stopped sending heartbeats" in error_text:
        return "no heartbeats"
    if "Deadline" in error_text or "deadline" in error_text:
        return "timed out"
    return "connection lost"


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices, as if the machine had that many.

    Lets "towers" and "mirrored" run on a CPU-only machine, to try them (the devices share
    the same cores, so they cannot be faster). Call it before TensorFlow sets up its devices.

    Raises:
      ValueError: `num_devices` < 1, or TensorFlow's devices are already set up differently.
    """
    if num_devices < 1:
        raise ValueError(f"logical_cpus={num_devices} must be at least 1.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if len(current or [None]) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])
    except RuntimeError:
        raise ValueError(
            f"logical_cpus={num_devices}: TensorFlow has already set up "
            f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s) in this process; "
            "split the CPU before anything else runs TensorFlow ops.") from None
