"""Built-in task `kdd135`: anomaly detection on dataset 135 of the UCR / KDD Cup 2021 anomaly archive.

The series is "135_UCR_Anomaly_InternalBleeding16" of the archive that Wu and
Keogh built for the SIGKDD 2021 time-series anomaly detection competition
(250 series, one labelled anomaly each): a patient's arterial blood pressure
during internal bleeding, 7501 samples, of which the first 1200 are the
archive's anomaly-free training part; the anomaly is 12 samples (4187-4198)
where the smooth pulse wave turns into a burst of noise. aeon ships the file
inside its package (aeon/datasets/data/KDD-TSAD_135); it is read from the
installed files, never downloaded, and its sha256 is checked: install the
`[anomaly]` extra, which pins the aeon release. aeon itself is not imported.

Windows of WINDOW samples at the full rate (a pulse is about 183 samples).
The archive's training part gives the training windows (its first 1000
samples) and the validation windows (the rest); the test windows cover
everything after it. A test window is anomalous when it covers at least half
of the labelled anomaly (see ``labelled_windows``).
"""

from __future__ import annotations

import io

import numpy as np

from .base import AnomalySplits, packaged_file, split_by_time

__all__ = ["make", "load_series", "WINDOW"]

CSV = "aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv"
CSV_SHA256 = "fe26577b94896943e8205d04d56bf2511fe05c008df535a1ec3826adff3597e2"
WINDOW = 128
TRAIN_PART, TRAIN_END = 1200, 1000  # the archive's anomaly-free prefix; training windows end at TRAIN_END
TRAIN_STRIDE, TEST_STRIDE = 2, 8


def load_series() -> tuple[np.ndarray, np.ndarray]:
    """The whole series: values (7501,) float32 and labels (7501,) bool."""
    data = packaged_file("kdd135", "aeon", CSV, CSV_SHA256, "anomaly")
    table = np.loadtxt(io.BytesIO(data), delimiter=",", skiprows=1)  # (7501, 3): timestamp, value, is_anomaly
    return table[:, 1].astype(np.float32), table[:, 2] > 0


def make(samples: int, seed: int, validation_split: float, test_split: float) -> AnomalySplits:
    """The task's windows. The split is the archive's (the arguments only fit the task interface)."""
    x, y = load_series()
    return split_by_time("kdd135", "series", x, y, TRAIN_END, TRAIN_PART, WINDOW, TRAIN_STRIDE, TEST_STRIDE)
