"""Built-in task `ecg`: anomaly detection on a real ECG recording with a labelled anomaly.

The data is the MIT-BIH Arrhythmia Database excerpt that sktime ships in its
package (sktime/datasets/data/mitdb/mitdb.csv: 7500 samples at 360 Hz, one
labelled abnormal stretch). It is read from the installed files, never
downloaded, and its sha256 is checked: install the `[ecg]` extra, which pins
the sktime release. sktime itself is not imported.

The recording is averaged down by 3 (120 Hz, a beat is about 100 samples) and
cut into windows of WINDOW samples. Time decides the split: the first part is
normal and gives the training and validation windows; the last part holds the
labelled anomaly and gives the test windows. A test window is labelled
anomalous when at least half of it is labelled, or when it covers at least
half of a labelled event (``labelled_windows``); each test window also records
which labelled anomaly (event) it touches, if any.
"""

from __future__ import annotations

import io

import numpy as np

from .base import AnomalySplits, packaged_file, split_by_time

__all__ = ["make", "load_recording", "WINDOW", "DOWNSAMPLE"]

CSV = "sktime/datasets/data/mitdb/mitdb.csv"
CSV_SHA256 = "d4f2539a5e85e1ac1e7f8bba152b5e60a02356282463a8a1c97848ad3e1bb386"
DOWNSAMPLE, WINDOW = 3, 96
TRAIN_END, VAL_END = 1700, 2000  # in downsampled samples; the anomaly lies after VAL_END
TRAIN_STRIDE, TEST_STRIDE = 2, 4


def load_recording() -> tuple[np.ndarray, np.ndarray]:
    """The full recording: values (7500,) float32 and labels (7500,) bool."""
    data = packaged_file("ecg", "sktime", CSV, CSV_SHA256, "ecg")
    table = np.loadtxt(io.BytesIO(data), delimiter=",", skiprows=1)  # (7500, 2): value, label
    return table[:, 0].astype(np.float32), table[:, 1] > 0


def make(samples: int, seed: int, validation_split: float, test_split: float) -> AnomalySplits:
    """The task's windows. The split is fixed by time (the arguments only fit the task interface)."""
    values, labels = load_recording()
    usable = len(values) // DOWNSAMPLE * DOWNSAMPLE
    x = values[:usable].reshape(-1, DOWNSAMPLE).mean(axis=1)             # (2500,)
    y = labels[:usable].reshape(-1, DOWNSAMPLE).mean(axis=1) >= 0.5      # (2500,)
    return split_by_time("ecg", "recording", x, y, TRAIN_END, VAL_END, WINDOW, TRAIN_STRIDE, TEST_STRIDE)
