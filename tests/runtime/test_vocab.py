"""Vocabularies: encoding, decoding, special tokens and unknown symbols (runtime only)."""

import pytest

from seq2seq_edge.runtime import BundleError, InputError, UnknownTokenError, Vocabulary


def test_vocabulary_roundtrip_and_specials():
    vocab = Vocabulary.build(["abc", "cab"], with_start_end=True)
    assert vocab.tokens == ("<pad>", "<unk>", "<s>", "</s>", "a", "b", "c")
    ids, lengths = vocab.encode_batch(["ab", "cabc"])
    assert ids.tolist() == [[4, 5, 0, 0], [6, 4, 5, 6]] and lengths.tolist() == [2, 4]
    assert vocab.decode([2, 6, 4, 3, 5]) == "ca"
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab


def test_space_separated_vocabulary():
    vocab = Vocabulary.build(["HH AH0 L OW1"], separator=" ", with_start_end=True)
    assert vocab.decode(vocab.encode("L OW1 HH")) == "L OW1 HH"


def test_unknown_policies():
    strict = Vocabulary.build(["ab"])
    with pytest.raises(UnknownTokenError, match=r"^'z' at position 1 of 'az' is not in the model's vocabulary; known symbols: 'a' 'b'"):
        strict.encode("az")
    lenient = Vocabulary.build(["ab"], on_unknown="unk")
    assert lenient.encode("az") == [lenient.tokens.index("a"), lenient.unk_id]


def test_reserved_tokens_refused_in_training_text():
    with pytest.raises(InputError, match=r"^training text contains reserved token\(s\) \['<s>'\]"):
        Vocabulary.build(["<s> x"], separator=" ")


def test_vocabulary_special_out_of_range():
    with pytest.raises(BundleError, match=r"^vocabulary: end_id=9 is not an index into 3 tokens$") as info:
        Vocabulary(("<pad>", "a", "b"), end_id=9)
    assert (info.value.code, info.value.field) == ("index", "end_id")
    with pytest.raises(BundleError, match=r"^vocabulary: separator must have at most 1 character, got 2: 'ab'") as info:
        Vocabulary(("<pad>", "a"), separator="ab")
    assert (info.value.code, info.value.field) == ("too_long", "separator")
    with pytest.raises(BundleError, match=r"^vocabulary: tokens\[1\] must be a string, got integer 3$"):
        Vocabulary(("<pad>", 3))
