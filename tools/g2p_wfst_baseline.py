"""A Phonetisaurus WFST (joint-sequence n-gram) baseline on the `g2p` task's own split and scoring.

Published G2P numbers use other splits and other CMUdict releases (the CMUSphinx
g2p-seq2seq README: Phonetisaurus 24.4% WER on the 2007 PRONALSYL split, 33.89%
on "CMUdict latest"), so this trains the classic baseline on exactly the words
that `seq2seq-edge train g2p --samples 200000` trains on and scores it on the
same 6,245 test words, with `evaluate`'s own PER/WER (a word is right when it
matches any of its pronunciations).

    python -m pip install phonetisaurus==0.3.0   # its wheel ships the aligner, MITLM and OpenFst tools
    python tools/g2p_wfst_baseline.py --work /tmp/wfst [--samples 200000] [--seed 0]

Prints the PER/WER table and writes the test words' predictions to WORK/predictions.tsv.
Phonetisaurus's `train` aligns and estimates an 8-gram model (its default order, which
its command line does not change): about 2 minutes on one core here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    from seq2seq_edge.runtime.metrics import phoneme_word_error_rates
    from seq2seq_edge.training.config import TrainConfig
    from seq2seq_edge.training.tasks.g2p import make, references

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="a new or empty folder for the lexicon and model")
    parser.add_argument("--samples", type=int, default=200000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import phonetisaurus  # noqa: F401
    except ImportError:
        print("needs Phonetisaurus: python -m pip install phonetisaurus==0.3.0", file=sys.stderr)
        return 2
    if args.work.exists() and any(args.work.iterdir()):
        print(f"{args.work} is not empty: pass a new folder", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)

    config = TrainConfig(samples=args.samples, seed=args.seed)
    splits = make(config.samples, config.seed, config.validation_split, config.test_split)
    lexicon = args.work / "train.dict"  # every pronunciation of every training word (validation words unused)
    lexicon.write_text("".join(f"{w}\t{p}\n" for w, p in splits.train), encoding="utf-8")
    refs = references(splits.test)
    words = sorted(refs)
    model = args.work / "g2p.fst"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "phonetisaurus", "train", "--model", str(model), "--casing", "ignore",
                    "--corpus", str(args.work / "train.corpus"), str(lexicon)], check=True)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "phonetisaurus", "predict", "--model", str(model),
                             "--casing", "ignore", *words], check=True, capture_output=True, text=True)
    decoded = time.perf_counter() - started
    predictions = {}
    for line in result.stdout.splitlines():
        word, _, phonemes = line.partition(" ")
        predictions.setdefault(word, phonemes.strip())
    missing = [w for w in words if w not in predictions]
    predictions.update({w: "" for w in missing})  # no pronunciation: every phoneme wrong
    (args.work / "predictions.tsv").write_text("".join(f"{w}\t{predictions[w]}\n" for w in words), encoding="utf-8")
    scores = phoneme_word_error_rates(predictions, refs)
    print(f"| Phonetisaurus 8-gram WFST, {len(splits.train):,} training pronunciations "
          f"| PER {scores['per']:.2%} | WER {scores['wer']:.2%} | {len(words):,} test words "
          f"| trained in {trained / 60:.1f} min, decoded in {decoded:.0f} s"
          + (f" | {len(missing)} words without an output |" if missing else " |"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
