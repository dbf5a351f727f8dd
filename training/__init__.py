"""seq2seq_edge.training: Keras 3 models, built-in tasks and training into run directories.

TensorFlow is imported lazily, by the functions that need it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .config import ConfigError, ModelConfig, RunConfig, Sides, TrainConfig  # noqa: E402
from .fit import train  # noqa: E402
from .rundir import RunDir, RunDirError  # noqa: E402
from .tasks import TASKS  # noqa: E402

__all__ = ["train", "ModelConfig", "TrainConfig", "RunConfig", "Sides", "ConfigError", "RunDir",
           "RunDirError", "TASKS"]
