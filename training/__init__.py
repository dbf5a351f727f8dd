"""seq2seq_edge.training: Keras 3 models, built-in tasks and training into run directories.

Importing this package does not import TensorFlow or Keras; ``train`` and the
model builders do, when first used.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .config import ConfigError, ModelConfig, RunConfig, Sides, TrainConfig  # noqa: E402
from .rundir import RunDir, RunDirError  # noqa: E402
from .tasks import TASKS  # noqa: E402

__all__ = ["train", "ModelConfig", "TrainConfig", "RunConfig", "Sides", "ConfigError", "RunDir",
           "RunDirError", "TASKS"]


def __getattr__(name: str):
    if name == "train":  # imports keras: keep it out of the package import
        from .fit import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
