"""Pictures for people: an attention alignment (`run --show-attention --plot`) and an autoencoder's
evaluation (`evaluate --plot`). matplotlib is the [plot] extra, imported only here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..runtime.errors import Seq2SeqEdgeError

__all__ = ["plot_alignment", "plot_anomalies", "check_plot_output"]


def check_plot_output(path: str | Path, force: bool) -> None:
    """Refuse an existing --plot file (without ``force``) and a missing matplotlib before any work is done."""
    from ..runtime.fsutil import check_output_path

    check_output_path(Path(path), force, directory=False)
    _pyplot()


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise Seq2SeqEdgeError("--plot needs matplotlib: pip install 'seq2seq-edge[plot]'") from exc
    return plt


def _save(fig, path: Path, force: bool) -> None:
    """PNG bytes written atomically (the file appears whole or not at all)."""
    from ..runtime.fsutil import write_bytes_atomic

    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue(), force=force)


def plot_alignment(columns: list[str], rows: list[str], weights, path: Path, force: bool) -> None:
    """The attention weights (output steps x source symbols) as a grey matrix."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3, 0.4 * len(columns) + 1), max(2, 0.35 * len(rows) + 1)))
    ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), [c if c.strip() else "␣" for c in columns])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    _save(fig, path, force)


def stitch(windows: np.ndarray, stride: int, length: int) -> np.ndarray:
    """Overlapping windows (n, window) cut every ``stride`` samples -> one series (length,): each sample the
    mean of the windows that hold it (NaN where none does)."""
    total, count = np.zeros(length), np.zeros(length)
    for i, w in enumerate(windows):
        start = i * stride
        end = min(start + len(w), length)
        total[start:end] += w[: end - start]
        count[start:end] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def plot_anomalies(model, splits, path: Path, force: bool) -> dict:
    """Three panels over the test part of the series: the signal with its reconstruction (labelled anomalies
    shaded), each window's score against the threshold (flagged windows marked), and the per-step error
    against the per-step threshold. Returns what was drawn (samples, windows, flagged)."""
    if splits.test_series is None or splits.test_stride is None:
        raise Seq2SeqEdgeError("--plot needs the task's test series; this task's splits do not keep it")
    plt = _pyplot()
    signal, stride = np.asarray(splits.test_series, np.float64), splits.test_stride  # (time,)
    window = splits.test.shape[1]
    reconstruction = stitch(model.reconstruct(splits.test)[..., 0], stride, len(signal))
    steps = model.score(splits.test, per_step=True)  # (n, window)
    scores = steps.mean(axis=1)  # (n,)
    flagged = scores > model.threshold if model.threshold is not None else np.zeros(len(scores), bool)
    centres = np.arange(len(scores)) * stride + window / 2
    fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
    t = np.arange(len(signal))
    axes[0].plot(t, signal, lw=0.6, color="black", label="signal")
    axes[0].plot(t, reconstruction, lw=0.6, color="tab:blue", label="reconstruction")
    for ax in axes:
        _shade(ax, splits.test_series_labels, "tab:red", 0.15)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_ylabel("value")
    axes[1].plot(centres, scores, lw=0.8, color="tab:blue", label="window score")
    axes[1].scatter(centres[flagged], scores[flagged], s=10, color="tab:red", zorder=3, label="flagged")
    if model.threshold is not None:
        axes[1].axhline(model.threshold, color="tab:red", ls="--", lw=0.8, label="threshold")
    axes[1].set_ylabel("window score")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[2].plot(t, stitch(steps, stride, len(signal)), lw=0.6, color="tab:purple", label="error per step")
    if model.step_threshold is not None:
        axes[2].axhline(model.step_threshold, color="tab:red", ls="--", lw=0.8, label="per-step threshold")
    axes[2].set_ylabel("error per step")
    axes[2].set_xlabel("sample (test part; labelled anomalies shaded)")
    axes[2].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save(fig, path, force)
    return {"samples": int(len(signal)), "windows": int(len(scores)), "flagged": int(flagged.sum())}


def _shade(ax, labels: np.ndarray | None, color: str, alpha: float) -> None:
    """Shade each run of True in ``labels`` (time,)."""
    if labels is None or not labels.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], labels.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        ax.axvspan(start, stop, color=color, alpha=alpha, lw=0)
