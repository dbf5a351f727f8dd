"""Bundles whose int8 scales by the batch (exported before static int8): the runtime reads it from the graphs
(`batch_dependent_modes`), and `score` refuses that mode on several workers unless told
--allow-batch-dependence. Such a bundle is made here as export made them: the committed dates bundle with its
int8 encoder quantised by onnxruntime's quantize_dynamic (DynamicQuantizeLSTM)."""

import json
import shutil

import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.runtime import InputError, load
from seq2seq_edge.runtime.bundle import sha256_bytes
from seq2seq_edge.scale import score_file

TEXTS = ["3 mei 1961", "July 14, 2023", "1 gennaio 2000", "Sunday, 31 December 2049"] * 5


@pytest.fixture
def dynamic_bundle(dates_bundle, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = tmp_path / "old"
    shutil.copytree(dates_bundle, folder)
    quantize_dynamic(str(folder / "encoder.onnx"), str(folder / "encoder_int8.onnx"), weight_type=QuantType.QInt8)
    data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    data["graphs"]["encoder_int8"]["sha256"] = sha256_bytes((folder / "encoder_int8.onnx").read_bytes())
    del data["decode"]["int8"]
    (folder / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return folder


def test_the_runtime_reads_batch_dependence_from_the_graphs(dates_bundle, dynamic_bundle):
    assert load(dynamic_bundle).batch_dependent_modes == ("fused-int8",)
    assert load(dates_bundle).batch_dependent_modes == ()


def test_score_refuses_it_on_several_workers(dynamic_bundle, tmp_path):
    with pytest.raises(InputError) as err:
        score_file(dynamic_bundle, tmp_path / "in.txt", tmp_path / "out.jsonl", workers=2)
    assert str(err.value) == (
        f"{dynamic_bundle}: mode 'fused-int8' scales int8 by each batch's range (the bundle was exported before int8 "
        "scales were fixed at export), so a row's output would depend on how rows are split among 2 workers; export "
        "the bundle again, or pass --mode fused, or --allow-batch-dependence (allow_batch_dependence=True) to "
        "accept it")
    assert not (tmp_path / "out.jsonl").exists()
    for k, kwargs in enumerate(({"workers": 1}, {"workers": 2, "mode": "fused"},
                                {"workers": 2, "allow_batch_dependence": True})):
        out = tmp_path / f"out{k}.jsonl"
        assert score_file(dynamic_bundle, tmp_path / "in.txt", out, **kwargs).rows == len(TEXTS)


def test_the_command_line_says_it_in_one_line(dynamic_bundle, tmp_path, capsys):
    args = ["score", str(dynamic_bundle), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.jsonl"),
            "--workers", "2"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-batch-dependence" in err and "Traceback" not in err
    assert main(args + ["--allow-batch-dependence"]) == 0
