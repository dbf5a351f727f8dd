"""The documented recipes: the README's training commands and the quality each must keep reaching.

A run whose task and configuration match a recipe records the recipe's floors
in its run directory (``quality.json``); export carries them into the bundle's
data record, and ``seq2seq-edge evaluate BUNDLE --check`` fails when a metric
falls below its floor. The floors sit a clear margin under the numbers the
README reports, so a recipe that regresses (as the ECG recipe once did, to a
model that detected nothing) fails the check instead of silently changing the
README's meaning. The quick presets have floors too; the test suite trains
them and checks them on every CI run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Recipe", "RECIPES", "QUICK", "match_recipe", "check_floors", "QUALITY_FILE"]

QUALITY_FILE = "quality.json"


@dataclass(frozen=True)
class Recipe:
    """A documented training command and the floors its results must keep.

    ``model`` and ``train``: the configuration fields the command sets (a run matches
    when its task and these fields are equal). ``floors``: metric path (dots into
    ``evaluate``'s output) -> [">=" or "<=", bound].
    """

    name: str
    task: str
    command: str
    model: dict[str, Any]
    train: dict[str, Any]
    floors: dict[str, tuple[str, float]] = field(default_factory=dict)

    def matches(self, task: str, model: Any, train: Any) -> bool:
        m, t = asdict(model), asdict(train)
        return (task == self.task and all(_same(m.get(k), v) for k, v in self.model.items())
                and all(_same(t.get(k), v) for k, v in self.train.items()))

    def record(self) -> dict:
        """What a run directory's quality.json holds."""
        return {"recipe": self.name, "command": self.command,
                "floors": {k: [op, bound] for k, (op, bound) in self.floors.items()}}


def _same(a: Any, b: Any) -> bool:
    return tuple(a) == tuple(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b


# Quick presets per task: small, minutes on two cores; `train TASK --quick` (flags given win).
QUICK: dict[str, dict[str, str]] = {
    "dates": {"samples": "20000", "epochs": "3", "units": "128", "layers": "1", "embedding_dim": "32"},
    "sine": {"samples": "20000", "epochs": "3", "units": "128", "layers": "1", "embedding_dim": "32"},
    "g2p": {"samples": "20000", "epochs": "3", "units": "128", "layers": "1", "embedding_dim": "32"},
    "ecg": {"cell": "gru", "units": "32", "epochs": "50", "patience": "0", "batch_size": "32",
            "learning_rate": "0.01"},
    "kdd135": {"cell": "gru", "units": "32", "epochs": "30", "patience": "0", "batch_size": "32"},
}


def _quick(task: str, floors: dict) -> Recipe:
    preset = QUICK[task]
    model = {"cell": preset["cell"], "units": (int(preset["units"]),)}
    train = {k: (float(v) if k == "learning_rate" else int(v)) for k, v in preset.items()
             if k not in ("cell", "units")}
    return Recipe(f"{task}-quick", task, f"seq2seq-edge train {task} --quick --out RUN_DIR", model, train, floors)


RECIPES: tuple[Recipe, ...] = (
    # README, "Sequence autoencoders": three seeds gave reconstruction ratios 0.23-0.34, window recall
    # 0.27-0.43 at precision 0.67-0.81, and the top-scoring window on the event every time.
    Recipe("ecg", "ecg",
           "seq2seq-edge train ecg --out runs/ecg --cell lstm --units 64 --epochs 80 --patience 10 --batch-size 32",
           {"cell": "lstm", "units": (64,)},
           {"epochs": 80, "patience": 10, "batch_size": 32, "learning_rate": 0.003, "lr_patience": 2},
           {"reconstruction_ratio": ("<=", 0.5), "event_recall": (">=", 1.0), "top_window_hits_event": (">=", 1),
            "best.recall": (">=", 0.2)}),
    # README, "A second benchmark": ratio 0.11; the model reconstructs the series but does not find the anomaly.
    Recipe("kdd135", "kdd135",
           "seq2seq-edge train kdd135 --out runs/kdd135 --cell lstm --units 64 --epochs 100 --patience 10 "
           "--batch-size 32",
           {"cell": "lstm", "units": (64,)},
           {"epochs": 100, "patience": 10, "batch_size": 32, "learning_rate": 0.003, "lr_patience": 2},
           {"reconstruction_ratio": ("<=", 0.25)}),
    # README, "Grapheme-to-phoneme on CMUdict": 28.07% greedy WER (fp32), 28.17% (int8), 27.93% with a beam of 5.
    Recipe("g2p", "g2p",
           "seq2seq-edge train g2p --out runs/g2p --samples 200000 --units 384 --layers 2 --embedding-dim 64 "
           "--dropout 0.3 --batch-size 128 --epochs 100 --patience 3 --lr-patience 1 --max-minutes 55",
           {"cell": "lstm", "units": 384, "layers": 2, "embedding_dim": 64, "dropout": 0.3, "attention": None,
            "bidirectional": False, "input_feeding": False},
           {"samples": 200000, "batch_size": 128, "epochs": 100, "patience": 3, "lr_patience": 1,
            "max_minutes": 55, "learning_rate": 0.003, "label_smoothing": 0.0, "precision": "float32",
            "select_by": "loss", "lr_schedule": "plateau", "ema": 0.0},
           {"greedy.wer": ("<=", 0.31), "beam5.wer": ("<=", 0.31), "greedy.per": ("<=", 0.08)}),
    # README, "With attention": 27.32% WER greedy and with a beam of 5, PER 6.43% / 6.41%.
    Recipe("g2p-attention", "g2p",
           "seq2seq-edge train g2p --out runs/g2p_att384 --samples 200000 --units 384 --layers 2 --embedding-dim 64 "
           "--dropout 0.3 --batch-size 128 --epochs 100 --patience 3 --lr-patience 1 --max-minutes 50 "
           "--attention luong --bidirectional",
           {"cell": "lstm", "units": 384, "layers": 2, "embedding_dim": 64, "dropout": 0.3, "attention": "luong",
            "bidirectional": True, "input_feeding": False},
           {"samples": 200000, "batch_size": 128, "epochs": 100, "patience": 3, "lr_patience": 1,
            "max_minutes": 50, "learning_rate": 0.003, "label_smoothing": 0.0, "precision": "float32",
            "select_by": "loss", "lr_schedule": "plateau", "ema": 0.0},
           {"greedy.wer": ("<=", 0.30), "beam5.wer": ("<=", 0.30), "greedy.per": ("<=", 0.075)}),
    # README, "With attention", the best measured: 26.10% WER greedy (fp32), 25.89% with a beam of 5, PER 6.14% / 6.09%.
    Recipe("g2p-attention-512", "g2p",
           "seq2seq-edge train g2p --out runs/g2p_att --samples 200000 --units 512 --layers 2 --embedding-dim 64 "
           "--dropout 0.4 --batch-size 128 --epochs 100 --patience 4 --lr-patience 1 --max-minutes 55 "
           "--attention luong --bidirectional --precision mixed_bfloat16 --select-by sequence_accuracy "
           "--lr-schedule budget",
           {"cell": "lstm", "units": 512, "layers": 2, "embedding_dim": 64, "dropout": 0.4, "attention": "luong",
            "bidirectional": True, "input_feeding": False},
           {"samples": 200000, "batch_size": 128, "epochs": 100, "patience": 4, "lr_patience": 1,
            "max_minutes": 55, "learning_rate": 0.003, "label_smoothing": 0.0, "precision": "mixed_bfloat16",
            "select_by": "sequence_accuracy", "lr_schedule": "budget", "ema": 0.0},
           {"greedy.wer": ("<=", 0.29), "beam5.wer": ("<=", 0.29), "greedy.per": ("<=", 0.07)}),
    # Trained by tests/test_anomaly.py on every CI run (measured: ratio 0.39 and 0.22).
    _quick("ecg", {"reconstruction_ratio": ("<=", 0.6), "event_recall": (">=", 1.0)}),
    _quick("kdd135", {"reconstruction_ratio": ("<=", 0.5)}),
)


def match_recipe(task: str, model: Any, train: Any) -> Recipe | None:
    """The documented recipe this run follows, if any."""
    return next((r for r in RECIPES if r.matches(task, model, train)), None)


def check_floors(metrics: dict, floors: dict) -> list[str]:
    """One line per floor that ``metrics`` misses (empty when all hold)."""
    problems = []
    for path, (op, bound) in floors.items():
        value: Any = metrics
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, (int, float)):
            why = (metrics.get("not_run") or {}).get(path.split(".")[0])
            problems.append(f"{path}: not in the evaluation" + (f" ({why})" if why else ""))
        elif (op == ">=" and not value >= bound) or (op == "<=" and not value <= bound):
            problems.append(f"{path} = {value:.4g}, documented floor {op} {bound:g}")
    return problems
