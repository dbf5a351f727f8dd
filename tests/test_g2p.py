"""The g2p task, its metrics, reversed sources and per-batch padding."""

import pytest

from seq2seq_edge.runtime.metrics import edit_distance, phoneme_word_error_rates
from seq2seq_edge.runtime import Vocabulary
from seq2seq_edge.training import ConfigError, TrainConfig
from seq2seq_edge.training.tasks import g2p


def test_dictionary_without_stress():
    prons = g2p.pronunciations()
    assert len(prons) > 100_000
    assert prons["hello"] == ("HH AH L OW", "HH EH L OW")
    phonemes = {p for ps in prons.values() for pron in ps for p in pron.split()}
    assert len(phonemes) == 39 and not any(ch.isdigit() for p in phonemes for ch in p)


def test_split_by_word_with_every_pronunciation_together():
    a, b = g2p.make(3000, 4, 0.05, 0.05), g2p.make(3000, 4, 0.05, 0.05)
    assert a == b and a.reverse_source and a.target_separator == " "
    words = [{w for w, _ in split} for split in (a.train, a.validation, a.test)]
    assert not (words[0] & words[1] or words[0] & words[2] or words[1] & words[2])
    assert sum(map(len, words)) == 3000 and len(words[2]) == 150
    prons = g2p.pronunciations()
    refs = g2p.references(a.test)
    assert all(refs[w] == set(prons[w]) for w in refs)


def test_edit_distance_and_error_rates():
    assert edit_distance("K AE T".split(), "K AA T S".split()) == 2
    assert edit_distance([], ["A"]) == 1
    refs = {"read": {"R IY D", "R EH D"}, "cat": {"K AE T"}}
    rates = phoneme_word_error_rates({"read": "R EH D", "cat": "K AA T S"}, refs)
    assert rates == {"words": 2, "per": pytest.approx(2 / 6), "wer": 0.5}


def test_reversed_vocabulary_roundtrip():
    vocab = Vocabulary.build(["word"], reverse=True)
    assert vocab.decode(vocab.encode("word")) == "drow"
    ids, lengths = vocab.encode_batch(["wo", "word"])
    assert ids[0, :2].tolist() == vocab.encode("wo") and lengths.tolist() == [2, 4]
    assert Vocabulary.from_dict(vocab.to_dict()).reverse is True


def test_bucketed_batches_pad_per_batch():
    from seq2seq_edge.training.data import bucketed_batches, build_vocabularies, token_arrays

    splits = g2p.make(600, 0, 0.05, 0.05)
    source, target = build_vocabularies(splits)
    arrays = token_arrays(splits.train, source, target)
    seen = []
    for inputs, out in bucketed_batches(arrays, 32, seed=0):
        src, tin = inputs["source"].numpy(), inputs["target_input"].numpy()
        assert src.shape[0] == tin.shape[0] == out.shape[0] <= 32
        assert (src[:, -1] != 0).any() and (out.numpy()[:, -1] != 0).any()  # trimmed to the batch's longest
        seen += [tuple(r[r != 0]) for r in src]
    assert sorted(seen) == sorted(tuple(r[r != 0]) for r in arrays.source)


def test_max_minutes_validated():
    with pytest.raises(ConfigError, match=r"max_minutes must be >= 0 \(0 means no limit\), got -1"):
        TrainConfig(max_minutes=-1)


def test_quick_train_export_evaluate(g2p_run, g2p_bundle, capsys):
    """`train g2p --quick` with overrides (conftest.G2P_QUICK), `export`, then `evaluate`."""
    import json

    from seq2seq_edge.cli import main

    run, bundle = g2p_run, g2p_bundle
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["samples"] == 1500 and config["model"]["units"] == 32 and config["model"]["layers"] == 1
    assert config["model"]["bidirectional"] is True and config["model"]["dropout"] == 0.1
    assert config["train"]["lr_patience"] == 1
    capsys.readouterr()
    assert main(["evaluate", str(bundle), "--beam-width", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(bundle), "--beam-width", "3"]) == 0  # tables for a person
    table = capsys.readouterr().out.splitlines()
    assert table[:2] == ["task: g2p", ""] and table[2].split() == ["decoding", "words", "per", "wer"]
    assert table[4].split() == ["greedy", "75", f"{result['greedy']['per']:.4g}", f"{result['greedy']['wer']:.4g}"]
    assert table[5].split() == ["beam3", "75", f"{result['beam3']['per']:.4g}", f"{result['beam3']['wer']:.4g}"]
    assert table[7].split() == ["greedy_by_mode", "words", "per", "wer"]
    assert result["task"] == "g2p" and set(result) == {"task", "greedy", "greedy_by_mode", "beam3"}
    assert set(result["greedy_by_mode"]) == {"step", "fused", "fused-int8"}
    assert result["greedy_by_mode"]["step"] == result["greedy_by_mode"]["fused"]  # both exact fp32 decodes
    for rates in (result["greedy"], result["beam3"], *result["greedy_by_mode"].values()):
        assert rates["words"] == 75
    # Recomputed here: WER is the share of test words whose output matches none of their pronunciations.
    from seq2seq_edge.runtime import DecodeOptions, load
    from seq2seq_edge.training.tasks import make_splits

    refs = g2p.references(make_splits("g2p", TrainConfig(samples=1500)).test)
    words, model = sorted(refs), load(bundle)
    for key, kwargs in (("step", {"mode": "step"}), ("fused-int8", {"mode": "fused-int8"})):
        outputs = model.generate_text(words, **kwargs)
        assert result["greedy_by_mode"][key]["wer"] == sum(o not in refs[w] for w, o in zip(words, outputs)) / 75
    beam = model.generate_text(words, options=DecodeOptions("beam", beam_width=3))
    assert result["beam3"]["wer"] == sum(o not in refs[w] for w, o in zip(words, beam)) / 75
