"""Training past one process: tf.distribute strategies and the per-replica input they read.

``mirrored`` copies the model to every local device (the GPUs, or CPU devices that
``cpu_devices`` splits this machine's CPU into) and all-reduces gradients each step;
``multi-worker`` does the same across processes or machines (MultiWorkerMirroredStrategy),
configured by TF_CONFIG as TensorFlow documents it, or by ``workers`` and ``worker_index``.

Each step's global batch is one of the batches a single process would train on (the
same rows, cut the same way; the batches come in another order, since building the model
under a strategy draws one epoch's worth of shuffling): mirrored, tf.distribute splits it
into consecutive parts, one per local replica; multi-worker, its rows are dealt to the
replicas (row k to replica k mod R) and each worker's input pipeline reads only its
replicas' rows (the dataset is sharded per worker, not replicated). A batch that would
leave a replica without rows is left out. Every worker generates the task's data from the
same seed; only the chief (worker 0, or the task named ``chief``) writes the run directory,
and an output the chief refuses stops every worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..runtime.fsutil import OutputExistsError, check_output_path
from .config import ConfigError

__all__ = ["DISTRIBUTE", "Distribution", "fit_multi_worker", "make_feeder", "worker_scratch",
           "check_output_together", "any_worker"]

DISTRIBUTE = ("mirrored", "multi-worker")
MAX_CPU_DEVICES = 64


@dataclass(frozen=True)
class Distribution:
    """How to spread training: ``strategy`` ``mirrored`` or ``multi-worker``.

    ``cpu_devices`` (mirrored, machines without GPUs): split the CPU into that many logical
    devices, one replica each; it shows that mirrored training works, and gives no speed-up.
    ``workers`` (multi-worker): ``host:port`` of every worker, the same list on each, with this
    process's ``worker_index``; without them TF_CONFIG must describe the cluster.
    """

    strategy: str
    cpu_devices: int | None = None
    workers: tuple[str, ...] = ()
    worker_index: int | None = None

    def __post_init__(self) -> None:
        if self.strategy not in DISTRIBUTE:
            raise ConfigError(f"distribute must be one of {', '.join(DISTRIBUTE)}, got {self.strategy!r}")
        if self.cpu_devices is not None:
            if self.strategy != "mirrored":
                raise ConfigError("cpu_devices splits this machine's CPU for the mirrored strategy; "
                                  "multi-worker runs one replica per worker process")
            if (not isinstance(self.cpu_devices, int) or isinstance(self.cpu_devices, bool)
                    or not 1 <= self.cpu_devices <= MAX_CPU_DEVICES):
                raise ConfigError(f"cpu_devices must be an integer from 1 to {MAX_CPU_DEVICES}, "
                                  f"got {self.cpu_devices!r}")
        if self.strategy == "mirrored" and (self.workers or self.worker_index is not None):
            raise ConfigError("workers and worker_index configure multi-worker training; mirrored runs "
                              "in one process (use distribute='multi-worker')")
        if self.workers:
            for address in self.workers:
                host, _, port = address.rpartition(":")
                if not host or not port.isdigit() or not 0 < int(port) < 65536:
                    raise ConfigError(f"workers: {address!r} is not host:port (for example "
                                      "127.0.0.1:12345)")
            if len(set(self.workers)) != len(self.workers):
                raise ConfigError(f"workers: an address is listed twice in {','.join(self.workers)}")
            if self.worker_index is None:
                raise ConfigError("workers needs worker_index (--worker-index): this process's place in "
                                  "the list, 0 for the chief, which writes the run directory")
            if not isinstance(self.worker_index, int) or not 0 <= self.worker_index < len(self.workers):
                raise ConfigError(f"worker_index must be from 0 to {len(self.workers) - 1} for "
                                  f"{len(self.workers)} workers, got {self.worker_index!r}")
        elif self.worker_index is not None:
            raise ConfigError("worker_index needs workers (--workers host:port,...)")

    def tf_config(self) -> dict | None:
        """The cluster this process joins (multi-worker): from ``workers``, else TF_CONFIG; checked."""
        if self.strategy != "multi-worker":
            return None
        text = os.environ.get("TF_CONFIG", "")
        if self.workers:
            if text:
                raise ConfigError("both TF_CONFIG and --workers describe the cluster; unset TF_CONFIG or "
                                  "leave out --workers")
            return {"cluster": {"worker": list(self.workers)},
                    "task": {"type": "worker", "index": self.worker_index}}
        if not text:
            raise ConfigError("multi-worker training needs the cluster: set TF_CONFIG (see "
                              "https://www.tensorflow.org/guide/distributed_training) or pass "
                              "--workers host:port,... with --worker-index")
        try:
            config = json.loads(text)
            cluster, task = config["cluster"], config["task"]
            kind, index = task["type"], task["index"]
            members = cluster[kind]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"TF_CONFIG must be JSON with cluster (job -> list of host:port) and task "
                              f"(type, index) naming one of its members: {e!r}") from None
        if kind not in ("chief", "worker") or not isinstance(index, int) or not 0 <= index < len(members):
            raise ConfigError(f"TF_CONFIG task {task!r} is not a chief or worker of the cluster "
                              f"{sorted(cluster)}")
        return config

    def is_chief(self) -> bool:
        """Whether this process writes the run directory."""
        config = self.tf_config()
        if config is None:
            return True
        task, cluster = config["task"], config["cluster"]
        return task["type"] == "chief" or ("chief" not in cluster and task["index"] == 0)

    def make_strategy(self):
        """The tf.distribute strategy; call before TensorFlow runs anything else in this process."""
        import tensorflow as tf

        if self.strategy == "multi-worker":
            config = self.tf_config()
            if not self.workers:
                return tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG itself
            resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
                tf.train.ClusterSpec(config["cluster"]), task_type="worker", task_id=self.worker_index,
                rpc_layer="grpc")
            return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        if self.cpu_devices is not None:
            cpus = tf.config.list_physical_devices("CPU")
            try:
                tf.config.set_logical_device_configuration(
                    cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(self.cpu_devices)])
            except RuntimeError as e:  # TensorFlow already ran something in this process
                raise ConfigError(f"cpu_devices: TensorFlow is already initialised in this process ({e}); "
                                  "split the CPU in a fresh process (the command line does)") from None
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] if gpus and self.cpu_devices is None else \
            [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)

    def describe(self, strategy) -> dict:
        """What history.json records of the run's distribution."""
        cluster = (self.tf_config() or {}).get("cluster", {})
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        return {"strategy": self.strategy, "replicas": int(strategy.num_replicas_in_sync),
                "workers": max(workers, 1)}


def fit_multi_worker(net, strategy) -> None:
    """Make ``net.fit`` work under MultiWorkerMirroredStrategy with Keras 3 (3.15 measured here).

    Two Keras bugs stop it (keras-team/keras#20329, #20585): the model is built from its first
    batch all-reduced across replicas (``strategy.reduce("MEAN", batch)``), which fails for a
    dict of inputs and for workers whose batches differ in length; and every training step
    reduces its scalar metric results with ``strategy.reduce("MEAN", value, axis=0)``, which
    fails for scalars. So the build uses this worker's own part of the first batch (it needs
    shapes only; every worker still draws it, so the input pipelines stay in step), and scalar
    results are averaged over the replicas with ``axis=None``, as Keras means to.
    """
    import tensorflow as tf
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    def local(value):
        return (strategy.experimental_local_results(value)[0]
                if isinstance(value, tf.distribute.DistributedValues) else value)

    def build(iterator=None, data_batch=None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local, next(it))
                break
        with strategy.scope():
            net._symbolic_build(data_batch=data_batch)

    net._maybe_symbolic_build = build
    if not getattr(trainer.reduce_per_replica, "seq2seq_edge_patch", False):
        original = trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
                return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
            return original(values, strategy, reduction)

        reduce_per_replica.seq2seq_edge_patch = True
        trainer.reduce_per_replica = reduce_per_replica


def make_feeder(strategy, multi_worker: bool) -> Callable | None:
    """For a distributed run: ``make(replicas, mine) -> tf.data.Dataset`` -> what the replicas read. None for
    one process.

    Mirrored: the global batches of one process, each split among the local replicas by tf.distribute.
    Multi-worker: one input pipeline per worker that reads only the rows of its own replicas ``mine``.
    """
    if strategy is None:
        return None

    def feed(make: Callable):
        if not multi_worker:
            return strategy.experimental_distribute_dataset(make(strategy.num_replicas_in_sync, None))

        def pipeline(context):
            local = context.num_replicas_in_sync // context.num_input_pipelines
            first = context.input_pipeline_id * local
            return make(context.num_replicas_in_sync, tuple(range(first, first + local)))

        return strategy.distribute_datasets_from_function(pipeline)

    return feed


@contextlib.contextmanager
def worker_scratch() -> Iterator[Path]:
    """Where a worker other than the chief saves its copy of the model (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="seq2seq-edge-worker-") as tmp:
        yield Path(tmp)


def check_output_together(strategy, out: Path, force: bool, chief: bool) -> None:
    """The chief's output check, agreed by every worker: had the chief stopped alone (an existing output),
    the other workers would wait for it forever. Every worker calls this once, right after joining."""
    problem = None
    if chief:
        try:
            check_output_path(out, force, directory=True)
        except OutputExistsError as exc:
            problem = exc
    if any_worker(strategy, problem is not None):
        raise problem or ConfigError("the chief (worker 0) refused to start training (see its error); nothing "
                                     "was trained")


def any_worker(strategy, flag: bool) -> bool:
    """Whether ``flag`` holds on any worker (every worker must call this at the same point)."""
    import tensorflow as tf

    votes = strategy.run(tf.function(lambda: tf.constant(1.0 if flag else 0.0)))
    return float(strategy.reduce("SUM", votes, axis=None)) > 0
