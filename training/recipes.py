"""The documented recipes: what `seq2seq-edge train TASK` trains, and the quality each must keep reaching.

Every built-in task has a recipe named after it, the configuration `train TASK` (and
``train(task, out)`` in Python) uses when no flag says otherwise, and a quick preset,
``TASK-quick``, small enough for tests and demos (`train TASK --quick`). Flags given
replace the recipe's fields one by one. Further recipes (the G2P attention ones) are
the task's recipe with the flags their ``command`` shows.

A run whose task and configuration (any seed) are a recipe's records the recipe's floors
in its run directory (``quality.json``); export carries them into the bundle's data
record, and ``seq2seq-edge evaluate BUNDLE --check`` fails when a metric falls below
its floor. The floors sit a clear margin under the numbers the README reports, so a
recipe that regresses (as the ECG recipe once did, to a model that detected nothing)
fails the check instead of silently changing the README's meaning. The quick presets
of ecg, kdd135 and dates have floors too; the test suite trains them and checks them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .config import AutoencoderConfig, ModelConfig, TrainConfig

__all__ = ["Recipe", "RECIPES", "QUICK", "recipe_for", "configure", "match_recipe", "check_floors",
           "QUALITY_FILE"]

QUALITY_FILE = "quality.json"


@dataclass(frozen=True)
class Recipe:
    """A documented configuration of a task and the floors its results must keep.

    ``model`` and ``train``: the fields it sets (the others keep the dataclass defaults).
    ``floors``: metric path (dots into ``evaluate``'s output) -> (">=" or "<=", bound).
    ``family``: ``seq2seq`` (``model`` configures a ModelConfig) or ``autoencoder``.
    """

    name: str
    task: str
    model: dict[str, Any]
    train: dict[str, Any]
    floors: dict[str, tuple[str, float]] = field(default_factory=dict)
    family: str = "seq2seq"

    def configs(self) -> tuple[ModelConfig | AutoencoderConfig, TrainConfig]:
        """The frozen model and training configurations of this recipe."""
        model_cls = AutoencoderConfig if self.family == "autoencoder" else ModelConfig
        return model_cls(**self.model), TrainConfig(**self.train)

    @property
    def command(self) -> str:
        """The command line that trains it: the task's recipe needs no flags, the others the fields that
        differ from it."""
        head = f"seq2seq-edge train {self.task}"
        if self.name == f"{self.task}-quick":
            return f"{head} --quick --out RUN_DIR"
        base = recipe_for(self.task)
        flags = [] if base is self else _flags(self.configs(), base.configs() if base else None)
        return " ".join([head, "--out RUN_DIR", *flags])

    def flags(self) -> str:
        """The fields it sets, as `train` flags (those the dataclass defaults leave as they are omitted)."""
        return " ".join(_flags(self.configs(), None))

    def matches(self, task: str, model: Any, train: Any) -> bool:
        """Whether a run of ``task`` with these configurations follows this recipe (the seed may differ)."""
        if task != self.task:
            return False
        mine_model, mine_train = self.configs()
        return (type(model) is type(mine_model) and asdict(model) == asdict(mine_model)
                and isinstance(train, TrainConfig) and replace(train, seed=mine_train.seed) == mine_train)

    def record(self) -> dict:
        """What a run directory's quality.json holds."""
        return {"recipe": self.name, "command": self.command,
                "floors": {k: [op, bound] for k, (op, bound) in self.floors.items()}}


def _flags(configs: tuple, base: tuple | None) -> list[str]:
    """`train` flags that turn ``base`` (default: the dataclass defaults) into ``configs``."""
    if base is None:
        base = (type(configs[0])(), TrainConfig())
    out = []
    if type(configs[0]) is not type(base[0]):
        out.append("--family " + ("autoencoder" if isinstance(configs[0], AutoencoderConfig) else "seq2seq"))
    for mine, theirs in zip(configs, base):
        for f in fields(mine):
            value = getattr(mine, f.name)
            if type(mine) is type(theirs) and value == getattr(theirs, f.name):
                continue
            flag = f"--{f.name.replace('_', '-')}"
            if value is True:
                out.append(flag)
            elif value is False or value is None:
                raise ValueError(f"recipe field {f.name}={value!r} has no flag; set it in the task's recipe")
            else:
                out.append(f"{flag} {','.join(map(str, value)) if isinstance(value, tuple) else value}")
    return out


# The model of the token tasks' quick presets: one LSTM layer of 128, embeddings of 32.
_SMALL = {"cell": "lstm", "units": 128, "layers": 1, "embedding_dim": 32}
# The G2P recipes' shared fields: 200,000 words (all of CMUdict), two layers, a time budget.
_G2P = {"samples": 200000, "batch_size": 128, "epochs": 100, "lr_patience": 1, "learning_rate": 0.003,
        "label_smoothing": 0.0}

RECIPES: tuple[Recipe, ...] = (
    # README, the quickstart (its first command trains this): 99.90% held-out exact match;
    # tests/test_cli.py holds it to 0.97.
    Recipe("dates", "dates", _SMALL, {"samples": 20000, "epochs": 4, "patience": 2},
           {"exact_match": (">=", 0.97)}),
    # No documented results: an LSTM of 128 for 10 epochs (the dataclass defaults).
    Recipe("sine", "sine", _SMALL, {"samples": 20000, "epochs": 10, "batch_size": 64, "patience": 3,
                                    "lr_patience": 2}),
    # README, "Grapheme-to-phoneme on CMUdict": 28.07% greedy WER (fp32), 28.17% (int8), 27.93% with a beam of 5;
    # 36 minutes on 2 cores (15 epochs, keeping epoch 12).
    Recipe("g2p", "g2p", {"cell": "lstm", "units": 384, "layers": 2, "embedding_dim": 64, "dropout": 0.3},
           {**_G2P, "patience": 3, "max_minutes": 55},
           {"greedy.wer": ("<=", 0.31), "beam5.wer": ("<=", 0.31), "greedy.per": ("<=", 0.08)}),
    # README, "With attention", the earlier recipe: 27.32% WER greedy and with a beam of 5, PER 6.43% / 6.41%.
    Recipe("g2p-attention", "g2p",
           {"cell": "lstm", "units": 384, "layers": 2, "embedding_dim": 64, "dropout": 0.3, "attention": "luong",
            "bidirectional": True},
           {**_G2P, "patience": 3, "max_minutes": 50},
           {"greedy.wer": ("<=", 0.30), "beam5.wer": ("<=", 0.30), "greedy.per": ("<=", 0.075)}),
    # README, "With attention", the best measured: 26.10% WER greedy (fp32), 25.89% with a beam of 5, PER 6.14% / 6.09%;
    # 55 minutes (the time budget) on a CPU with AVX512_BF16.
    Recipe("g2p-attention-512", "g2p",
           {"cell": "lstm", "units": 512, "layers": 2, "embedding_dim": 64, "dropout": 0.4, "attention": "luong",
            "bidirectional": True},
           {**_G2P, "patience": 4, "max_minutes": 55, "precision": "mixed_bfloat16",
            "select_by": "sequence_accuracy", "lr_schedule": "budget"},
           {"greedy.wer": ("<=", 0.29), "beam5.wer": ("<=", 0.29), "greedy.per": ("<=", 0.07)}),
    # README, "Sequence autoencoders": three seeds gave reconstruction ratios 0.23-0.34, window recall
    # 0.27-0.43 at precision 0.67-0.81, and the top-scoring window on the event every time; 104-137 s each.
    Recipe("ecg", "ecg", {"cell": "lstm", "units": (64,)},
           {"epochs": 80, "patience": 10, "batch_size": 32, "learning_rate": 0.003, "lr_patience": 2},
           {"reconstruction_ratio": ("<=", 0.5), "event_recall": (">=", 1.0), "top_window_hits_event": (">=", 1),
            "best.recall": (">=", 0.2)}, family="autoencoder"),
    # README, "A second benchmark": ratio 0.11 (49 epochs, 56 s); the model reconstructs the series but does not
    # find the anomaly.
    Recipe("kdd135", "kdd135", {"cell": "lstm", "units": (64,)},
           {"epochs": 100, "patience": 10, "batch_size": 32, "learning_rate": 0.003, "lr_patience": 2},
           {"reconstruction_ratio": ("<=", 0.25)}, family="autoencoder"),
    # The quick presets: small, minutes on two cores (`train TASK --quick`).
    # dates: tests/test_distribute.py trains it three ways and holds it to 0.95 (README: 0.995-0.998).
    Recipe("dates-quick", "dates", _SMALL, {"samples": 20000, "epochs": 3}, {"exact_match": (">=", 0.95)}),
    Recipe("sine-quick", "sine", _SMALL, {"samples": 20000, "epochs": 3}),
    # README: about 66% WER, about 15 s.
    Recipe("g2p-quick", "g2p", _SMALL, {"samples": 20000, "epochs": 3}),
    # Trained by tests/test_anomaly.py on every CI run (measured: ratio 0.39 and 0.22).
    Recipe("ecg-quick", "ecg", {"cell": "gru", "units": (32,)},
           {"epochs": 50, "patience": 0, "batch_size": 32, "learning_rate": 0.01},
           {"reconstruction_ratio": ("<=", 0.6), "event_recall": (">=", 1.0)}, family="autoencoder"),
    Recipe("kdd135-quick", "kdd135", {"cell": "gru", "units": (32,)}, {"epochs": 30, "patience": 0, "batch_size": 32},
           {"reconstruction_ratio": ("<=", 0.5)}, family="autoencoder"),
)

# Each task's quick preset (`train TASK --quick`).
QUICK: dict[str, Recipe] = {r.task: r for r in RECIPES if r.name == f"{r.task}-quick"}


def recipe_for(task: str, quick: bool = False) -> Recipe | None:
    """The recipe `seq2seq-edge train TASK` trains (with ``quick``, `--quick`'s preset); None for an unknown task."""
    name = f"{task}-quick" if quick else task
    return next((r for r in RECIPES if r.name == name and r.task == task), None)


def configure(task: str, *, quick: bool = False, family: str | None = None, model: dict | None = None,
              train: dict | None = None) -> tuple[ModelConfig | AutoencoderConfig, TrainConfig]:
    """The configurations `train TASK` runs: the task's recipe (or with ``quick`` its preset) with the fields in
    ``model`` and ``train`` replaced. ``family`` other than the recipe's: that family's dataclass defaults for
    the model, the recipe's training. A task without a recipe: the dataclass defaults."""
    recipe = recipe_for(task, quick)
    family = family or (recipe.family if recipe else "seq2seq")
    model_cls = AutoencoderConfig if family == "autoencoder" else ModelConfig
    base_model, base_train = recipe.configs() if recipe else (model_cls(), TrainConfig())
    if not isinstance(base_model, model_cls):
        base_model = model_cls()
    return replace(base_model, **(model or {})), replace(base_train, **(train or {}))


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
