"""A run directory: model.keras, config.json, vocabulary.json (token tasks), history.json, quality.json (recipes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..runtime.errors import Seq2SeqEdgeError
from ..runtime.vocab import Vocabulary
from .config import RunConfig

__all__ = ["RunDir", "RunDirError", "MODEL_FILE", "CONFIG_FILE", "VOCAB_FILE", "HISTORY_FILE"]

MODEL_FILE, CONFIG_FILE, VOCAB_FILE, HISTORY_FILE = "model.keras", "config.json", "vocabulary.json", "history.json"


class RunDirError(Seq2SeqEdgeError):
    """A run directory is missing or incomplete."""


@dataclass(frozen=True)
class RunDir:
    """Paths and contents of one training run."""

    path: Path

    @property
    def config(self) -> RunConfig:
        return RunConfig.load(self._file(CONFIG_FILE))

    def vocabularies(self) -> tuple[Vocabulary, Vocabulary]:
        data = json.loads(self._file(VOCAB_FILE).read_text(encoding="utf-8"))
        return Vocabulary.from_dict(data["source"]), Vocabulary.from_dict(data["target"])

    def save_vocabularies(self, source: Vocabulary, target: Vocabulary) -> None:
        text = json.dumps({"source": source.to_dict(), "target": target.to_dict()}, indent=1, ensure_ascii=False)
        (self.path / VOCAB_FILE).write_text(text + "\n", encoding="utf-8")

    def quality(self) -> dict | None:
        """The documented recipe's floors this run was trained to (quality.json), or None."""
        from .recipes import QUALITY_FILE

        file = self.path / QUALITY_FILE
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None

    def load_model(self):
        import keras

        return keras.models.load_model(self._file(MODEL_FILE), compile=False)  # inference only: no loss needed

    def _file(self, name: str) -> Path:
        file = self.path / name
        if not file.is_file():
            raise RunDirError(f"{file} is missing: {str(self.path)!r} is not a complete run directory "
                              "(create one with `seq2seq-edge train TASK --out RUN_DIR`)")
        return file
