"""Frozen, validated configuration objects, saved as JSON beside what they configure."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..runtime.errors import Seq2SeqEdgeError

__all__ = ["ConfigError", "ModelConfig", "AutoencoderConfig", "TrainConfig", "Sides", "RunConfig"]


class ConfigError(Seq2SeqEdgeError, ValueError):
    """A configuration value is out of range or inconsistent."""


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


CELLS, ACTIVATIONS = ("lstm", "gru"), ("tanh", "relu")
PRECISIONS = ("float32", "mixed_bfloat16")
SELECT_BY = ("loss", "sequence_accuracy")
LR_SCHEDULES = ("plateau", "budget")


def _check_cell(cell: str, activation: str) -> None:
    if cell not in CELLS:
        raise ConfigError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the encoder-decoder: cell type and activation, units per layer, layers, embedding width.

    ``dropout``: the rate of Dropout layers on every non-recurrent connection
    of the training model (after the embeddings, between stacked layers,
    before the output layer); the inference models leave them out.
    ``bidirectional``: each encoder layer is a bidirectional LSTM of
    ``units // 2`` per direction whose forward and backward final states,
    concatenated, start decoder layer k (so states keep ``units`` values).
    ``attention``: ``luong`` or ``bahdanau`` attention of the decoder over the last
    encoder layer's outputs (token sources; see training/attention.py), or None.
    ``input_feeding`` (with attention): each decoder step also reads the previous
    step's attentional vector (Luong's input feeding; an extra decoder state
    ``attentional`` that starts at zeros).
    """

    cell: str = "lstm"
    units: int = 128
    layers: int = 1
    embedding_dim: int = 32
    activation: str = "tanh"
    dropout: float = 0.0
    bidirectional: bool = False
    attention: str | None = None
    input_feeding: bool = False

    def __post_init__(self) -> None:
        _check_cell(self.cell, self.activation)
        if self.attention not in (None, "luong", "bahdanau"):
            raise ConfigError(f"attention must be 'luong' or 'bahdanau' (or left unset), got {self.attention!r}")
        if not isinstance(self.input_feeding, bool):
            raise ConfigError(f"input_feeding must be true or false, got {self.input_feeding!r}")
        if self.input_feeding and not self.attention:
            raise ConfigError("input_feeding feeds the attentional vector back: it needs attention "
                              "('luong' or 'bahdanau')")
        _positive(self, "units", "layers", "embedding_dim")
        if self.layers > 4:
            raise ConfigError(f"layers must be between 1 and 4, got {self.layers}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bidirectional, bool):
            raise ConfigError(f"bidirectional must be true or false, got {self.bidirectional!r}")
        if self.bidirectional and self.cell != "lstm":
            raise ConfigError(f"bidirectional encoders are built with LSTM cells only, got cell={self.cell!r}")
        if self.bidirectional and self.units % 2:
            raise ConfigError(f"bidirectional encoders split units between two directions: units must be even, "
                              f"got {self.units}")


@dataclass(frozen=True)
class AutoencoderConfig:
    """A RepeatVector sequence autoencoder: encoder widths (the last is the latent size), mirrored in the decoder.

    ``units=(32, 16)`` builds 32 -> 16 -> RepeatVector(window) -> 16 -> 32 -> TimeDistributed(Dense).
    ``detect``'s threshold is chosen at export (``export --threshold``), not here.
    """

    cell: str = "lstm"
    units: tuple[int, ...] = (32, 16)
    activation: str = "tanh"

    def __post_init__(self) -> None:
        _check_cell(self.cell, self.activation)
        units = tuple(self.units)
        object.__setattr__(self, "units", units)
        if not 1 <= len(units) <= 4 or any(not isinstance(u, int) or isinstance(u, bool) or u < 1 for u in units):
            raise ConfigError(f"units must be 1 to 4 positive integers, got {self.units!r}")


@dataclass(frozen=True)
class TrainConfig:
    """How to fit: data size and split, epochs, batch size, optimiser, seed, early stopping.

    ``lr_patience``: halve the learning rate after this many epochs without a
    better validation loss (or ``select_by`` figure), down to 1/64 of ``learning_rate`` (0 keeps it
    constant); ``patience``: stop after this
    many, keeping the best weights (0 trains every epoch). ``label_smoothing``
    (token targets): train towards (1 - e) one-hot + e uniform instead of one-hot.
    ``precision``: ``float32``, or ``mixed_bfloat16`` (Keras mixed precision: float32
    weights, bfloat16 arithmetic; about 1.7x faster on a CPU with AVX512_BF16, measured
    on the G2P attention model). The saved model is float32 either way.
    ``select_by``: the validation figure that early stopping, the learning-rate
    halving and the kept weights follow: ``loss``, or (token targets)
    ``sequence_accuracy``, the share of validation sequences whose every
    teacher-forced argmax is the target token, which is exactly the share that
    greedy decoding reproduces (the loss may rise from overconfidence while
    greedy decoding still improves).
    ``lr_schedule``: ``plateau`` (halve as ``lr_patience`` says), or ``budget``: the
    learning rate falls linearly with the share of ``max_minutes`` spent, from
    ``learning_rate`` to 1/64 of it at the end of the budget (``lr_patience`` is
    then unused), so a run stopped by its time budget ends at a low rate.
    ``ema``: 0 (off), or the momentum of an exponential moving average of the
    weights kept beside them (Polyak averaging; 0.999 averages over about the
    last 1,000 batches): validation, the kept epoch and the saved model use the
    averaged weights, training goes on from the raw ones. One process only.
    """

    samples: int = 20000
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.003
    validation_split: float = 0.05
    test_split: float = 0.05
    patience: int = 3
    lr_patience: int = 2
    seed: int = 0
    max_minutes: float = 0.0  # stop before an epoch that would end past this wall-clock budget; 0: no limit
    label_smoothing: float = 0.0  # token targets: weight of the uniform distribution mixed into each target
    precision: str = field(default="float32", metadata={
        "help": "float32 or mixed_bfloat16 (bfloat16 arithmetic, float32 weights; fast on AVX512_BF16 CPUs)"})
    select_by: str = field(default="loss", metadata={
        "help": "the validation figure that keeps the best epoch, stops and halves: loss or sequence_accuracy "
                "(token targets)"})
    lr_schedule: str = field(default="plateau", metadata={
        "help": "plateau (halve after --lr-patience epochs without a better validation figure) or budget (fall "
                "linearly over --max-minutes, to 1/64 at its end)"})
    ema: float = field(default=0.0, metadata={
        "help": "0 (off) or the momentum of a moving average of the weights that validation, the kept epoch "
                "and the saved model use, e.g. 0.999 (the average lags: on short runs keep it lower)"})

    def __post_init__(self) -> None:
        _positive(self, "samples", "epochs", "batch_size")
        if not isinstance(self.max_minutes, (int, float)) or self.max_minutes < 0:
            raise ConfigError(f"max_minutes must be >= 0 (0 means no limit), got {self.max_minutes!r}")
        if not isinstance(self.label_smoothing, (int, float)) or not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.select_by not in SELECT_BY:
            raise ConfigError(f"select_by must be one of {', '.join(SELECT_BY)}, got {self.select_by!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.lr_schedule == "budget" and not self.max_minutes:
            raise ConfigError("lr_schedule='budget' falls over the training time budget: set max_minutes too "
                              "(--max-minutes)")
        if isinstance(self.ema, bool) or not isinstance(self.ema, (int, float)) or not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be 0 (off) or a momentum in (0, 1) such as 0.999, got {self.ema!r}")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        for name in ("validation_split", "test_split"):
            if not 0 < getattr(self, name) < 0.5:
                raise ConfigError(f"{name} must be in (0, 0.5), got {getattr(self, name)!r}")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ConfigError(f"patience must be an integer >= 0 (0 turns early stopping off), got {self.patience!r}")
        if not isinstance(self.lr_patience, int) or self.lr_patience < 0:
            raise ConfigError("lr_patience must be an integer >= 0 (0 keeps the learning rate constant), "
                              f"got {self.lr_patience!r}")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if int(self.samples * min(self.validation_split, self.test_split)) < 1:
            raise ConfigError(f"samples={self.samples} is too few for the validation and test splits")


@dataclass(frozen=True)
class Sides:
    """What the model reads and writes: token vocabularies' sizes or feature counts."""

    source_kind: str
    source_size: int
    target_kind: str
    target_size: int
    max_steps: int

    def __post_init__(self) -> None:
        for kind in (self.source_kind, self.target_kind):
            if kind not in ("tokens", "features"):
                raise ConfigError(f"side kind must be 'tokens' or 'features', got {kind!r}")
        _positive(self, "source_size", "target_size", "max_steps")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run directory's config.json holds."""

    task: str
    model: ModelConfig | AutoencoderConfig
    train: TrainConfig
    sides: Sides
    normalisation: dict | None = None  # feature tasks: {"source": {mean, std}, "target": {mean, std}}

    @property
    def family(self) -> str:
        """'seq2seq' or 'autoencoder', from the model configuration's type."""
        return "autoencoder" if isinstance(self.model, AutoencoderConfig) else "seq2seq"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"family": self.family, **asdict(self)}, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        data = json.loads(path.read_text(encoding="utf-8"))
        try:
            model_cls = AutoencoderConfig if data.get("family") == "autoencoder" else ModelConfig
            return cls(task=data["task"], model=_make(model_cls, data["model"]),
                       train=_make(TrainConfig, data["train"]), sides=_make(Sides, data["sides"]),
                       normalisation=data.get("normalisation"))
        except KeyError as exc:
            raise ConfigError(f"{path}: field {exc} is missing") from exc


# Fields that older releases wrote and that mean nothing now (the threshold moved to export).
_RETIRED = {"AutoencoderConfig": {"threshold_quantile"}}


def _make(cls: type, data: dict) -> Any:
    data = {k: v for k, v in data.items() if k not in _RETIRED.get(cls.__name__, ())}
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    return cls(**data)
