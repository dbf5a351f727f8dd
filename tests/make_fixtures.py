"""Regenerate the committed tiny bundles and their golden outputs (needs the [train] extra).

    python tests/make_fixtures.py [dates] [sine] [autoencoder] [keras_io] [attention]     (default: all)
    python tests/make_fixtures.py --requantize [dates] [sine] [attention]                 (default: those three)

Writes tests/data/{dates_tiny,sine_tiny,sine_ae_tiny,keras_io_tiny,dates_attention_tiny}/ and their entries in
tests/data/golden.json.
The models are small but trained until they do their job (the dates model converts every
held-out date exactly, in every decode mode), so that the golden outputs are the right
answers and a test can say so. golden.json stores token ids beside the text, so an end
token wrongly kept in the output would show. The runtime tests use these without
TensorFlow; regenerate them only when the bundle format changes, and commit the result.
--requantize rebuilds only the int8 graphs from the committed fp32 ones (static scales, calibrated on 256 held-out
inputs), without training: the fp32 graphs and their golden outputs stay as they are.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden.json"
DATE_INPUTS = ["14 juillet 2023", "July 14, 2023", "14. Juli 2023", "3 mei 1961", "Sunday, 31 December 2049"]
DATE_OUTPUTS = ["2023-07-14", "2023-07-14", "2023-07-14", "1961-05-03", "2049-12-31"]  # the right answers
SINE_SEED = 7


def sine_waves(count: int = 3) -> np.ndarray:
    """(count, window + horizon, features): golden inputs and their true continuations."""
    from seq2seq_edge.training.tasks.sine import waves

    return waves(count, np.random.default_rng(SINE_SEED))


def dates(tmp: Path) -> dict:
    from seq2seq_edge.export.evaluate import evaluate_bundle
    from seq2seq_edge.export import export_run
    from seq2seq_edge.runtime import load
    from seq2seq_edge.training import ModelConfig, TrainConfig, train

    run = train("dates", tmp / "dates", ModelConfig(units=48, embedding_dim=16),
                TrainConfig(samples=20000, epochs=10, batch_size=64, seed=1), verbose=0)
    export_run(run.path, DATA / "dates_tiny", force=True)
    quality = evaluate_bundle(DATA / "dates_tiny")
    print("dates held-out exact match by mode:", {m: v["exact_match"] for m, v in quality["modes"].items()})
    model = load(DATA / "dates_tiny")
    outputs = model.generate_text(DATE_INPUTS, mode="step")
    if outputs != DATE_OUTPUTS:
        raise SystemExit(f"the dates model gets the golden inputs wrong: {outputs}; train it longer")
    ids, lengths = model.source_vocab.encode_batch(DATE_INPUTS)
    return {"inputs": DATE_INPUTS, "outputs": outputs,
            "output_ids": [row.tolist() for row in model.generate(ids, lengths=lengths, mode="step")],
            "h0": model.encode(ids, lengths)["h0"].round(6).tolist()}


def sine(tmp: Path) -> dict:
    from seq2seq_edge.export.evaluate import evaluate_bundle
    from seq2seq_edge.export import export_run
    from seq2seq_edge.runtime import load
    from seq2seq_edge.training import ModelConfig, TrainConfig, train
    from seq2seq_edge.training.tasks.sine import WINDOW

    run = train("sine", tmp / "sine", ModelConfig(units=32),
                TrainConfig(samples=10000, epochs=20, batch_size=64, seed=1), verbose=0)
    export_run(run.path, DATA / "sine_tiny", force=True)
    print("sine held-out:", evaluate_bundle(DATA / "sine_tiny"))
    waves = sine_waves()
    return {"inputs": waves[:, :WINDOW].tolist(), "truth": waves[:, WINDOW:].tolist(),
            "outputs": np.stack(load(DATA / "sine_tiny").generate(waves[:, :WINDOW], mode="step")).round(6).tolist()}


def autoencoder(tmp: Path) -> dict:
    """A GRU sequence autoencoder over the sine task's windows, and the same windows with a burst in them."""
    from seq2seq_edge.export import export_run
    from seq2seq_edge.runtime import load
    from seq2seq_edge.training import TrainConfig, train
    from seq2seq_edge.training.config import AutoencoderConfig
    from seq2seq_edge.training.tasks.sine import WINDOW

    run = train("sine", tmp / "ae", AutoencoderConfig(cell="gru", units=(16, 8)),
                TrainConfig(samples=3000, epochs=15, batch_size=32, seed=1), verbose=0)
    export_run(run.path, DATA / "sine_ae_tiny", force=True)
    model = load(DATA / "sine_ae_tiny")
    normal = sine_waves(4)[:, :WINDOW]
    spiked = normal.copy()
    spiked[:, 15:25, :] += 3.0  # a burst: ten steps lifted in every feature
    windows = np.concatenate([normal, spiked])
    return {"inputs": windows.tolist(), "anomalous": [False] * 4 + [True] * 4,
            "reconstructions": model.reconstruct(windows).round(6).tolist(),
            "scores": model.score(windows).round(6).tolist(), "latent": model.embed(windows).round(6).tolist()}


def attention(tmp: Path) -> dict:
    """The dates task with a Luong attention decoder (LSTM 32) and input feeding: constants in the manifest,
    the zero-started state 'attentional', and the fused and fused-int8 loops."""
    from seq2seq_edge.export import export_run
    from seq2seq_edge.runtime import DecodeOptions, load
    from seq2seq_edge.training import ModelConfig, TrainConfig, train

    run = train("dates", tmp / "att", ModelConfig(units=32, embedding_dim=16, attention="luong", input_feeding=True),
                TrainConfig(samples=20000, epochs=8, batch_size=64, seed=1), verbose=0)
    export_run(run.path, DATA / "dates_attention_tiny", force=True)
    model = load(DATA / "dates_attention_tiny")
    outputs = model.generate_text(DATE_INPUTS)
    if outputs != DATE_OUTPUTS:
        raise SystemExit(f"the attention dates model gets the golden inputs wrong: {outputs}; train it longer")
    beam = model.decode_text(DATE_INPUTS, DecodeOptions("beam", beam_width=3, n_best=2))
    ids, lengths = model.source_vocab.encode_batch(DATE_INPUTS)
    first, _ = model.step(np.full(len(ids), model.target_vocab.start_id, np.int32), model.encode(ids, lengths))
    return {"inputs": DATE_INPUTS, "outputs": outputs,
            "beam": [[[text, round(lp, 5)] for text, lp, _ in row] for row in beam],
            "first_logits": first.round(5).tolist(),
            "fused_int8": model.generate_text(DATE_INPUTS, mode="fused-int8")}


def keras_io(tmp: Path) -> dict:
    """The keras-io character example (one-hot inputs, softmax outputs) exported with export_keras: a bundle
    whose encoder sees padding as input (io.padding 'none'), with the example's own decode loop as golden."""
    sys.path.insert(0, str(Path(__file__).parent))
    from keras_examples import keras_io_char_seq2seq

    from seq2seq_edge.export import export_keras
    from seq2seq_edge.runtime import load

    enc, dec, source_tokens, target_tokens, decode_sequence, max_out = keras_io_char_seq2seq(latent_dim=32,
                                                                                            epochs=300)
    export_keras(enc, dec, DATA / "keras_io_tiny", source_tokens=source_tokens, target_tokens=target_tokens,
                 start_token="\t", end_token="\n", max_steps=max_out, force=True)
    words = ["Go.", "Hi.", "Wait!", "Hello!", "Run!", "Help!"]
    want = [decode_sequence(w) for w in words]
    if load(DATA / "keras_io_tiny").generate_text(words) != want:
        raise SystemExit("the exported keras-io bundle disagrees with the example's own decode loop")
    return {"inputs": words, "outputs": want}


def requantize(name: str) -> dict | None:
    """Rebuild the int8 graphs of the committed bundle ``name`` from its fp32 graphs (export.quantize, then
    static scales calibrated by a greedy fp32 decode of 256 held-out inputs), as export now builds them."""
    import onnx

    from seq2seq_edge.export.quantize import quantize_loop, quantize_model
    from seq2seq_edge.export.writing import (MANIFEST_FILE, stamp_metadata, static_int8_graphs, write_graph,
                                             write_manifest)
    from seq2seq_edge.runtime import load
    from seq2seq_edge.training.tasks import make_splits
    from seq2seq_edge.training.config import TrainConfig

    folder = DATA / {"dates": "dates_tiny", "sine": "sine_tiny", "attention": "dates_attention_tiny"}[name]
    data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    modes = data["decode"]["modes"]
    for role, build in (("encoder", quantize_model), ("decoder", quantize_loop)):
        fp32 = onnx.load(str(folder / data["graphs"][modes["fused"][role]]["file"]))
        key = modes["fused-int8"][role]
        data["graphs"][key]["sha256"] = write_graph(build(fp32), folder, data["graphs"][key]["file"]).sha256
    write_manifest(folder, data)
    task = "sine" if name == "sine" else "dates"
    held_out = make_splits(task, TrainConfig(samples=6000, seed=3)).test

    def calibrate(model) -> None:
        if task == "sine":
            model.generate(held_out[0][:256], mode="fused")
        else:
            ids, lengths = model.source_vocab.encode_batch([s for s, _ in held_out[:256]])
            model.generate(ids, lengths=lengths, mode="fused")

    int8 = static_int8_graphs(folder, calibrate)
    data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    data["decode"]["int8"] = {**int8, "activations": int8["activations"].replace(
        "parity sources at export", "held-out inputs (tests/make_fixtures.py --requantize)")}
    stamp_metadata(folder, data)
    write_manifest(folder, data)
    if name == "attention":
        return {"fused_int8": load(folder).generate_text(DATE_INPUTS, mode="fused-int8")}
    return None


def main(names: list[str]) -> None:
    if names[:1] == ["--requantize"]:
        golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
        for name in names[1:] or ["dates", "sine", "attention"]:
            golden[name].update(requantize(name) or {})
        GOLDEN.write_text(json.dumps(golden) + "\n", encoding="utf-8")
        print("requantized", names[1:] or "dates, sine, attention")
        return
    makers = {"dates": dates, "sine": sine, "autoencoder": autoencoder, "keras_io": keras_io,
              "attention": attention}
    unknown = sorted(set(names) - set(makers))
    if unknown:
        raise SystemExit(f"unknown fixtures {unknown}; choose from {sorted(makers)}")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(makers):
            golden[name] = makers[name](Path(tmp))
    GOLDEN.write_text(json.dumps(golden) + "\n", encoding="utf-8")
    print("wrote", DATA)


if __name__ == "__main__":
    main(sys.argv[1:])
