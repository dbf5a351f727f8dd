"""The decoders the benchmark compares, each behind one call: decode(ids, lengths) -> token id arrays.

All of them run the same greedy loop semantics on the same weights: each row
stops at its own end token or at max_steps.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..runtime.strategies import greedy_tokens

__all__ = ["keras_predict", "keras_direct", "litert", "plain_onnx", "runtime_mode"]

Decode = Callable[[np.ndarray, np.ndarray], list]


def keras_predict(ref, start_id: int, end_id: int, max_steps: int) -> Decode:
    """What the keras-io example does: predict() on the encoder, then on the decoder every step."""
    names, constants = ref.state_names, ref.constant_names

    def step(tokens, state):
        feed = {"step_input": tokens[:, None], **state}
        outputs = ref.decoder.predict({t.name: feed[t.name] for t in ref.decoder.inputs}, verbose=0)
        return outputs[0], {**dict(zip(names, outputs[1:])), **{n: state[n] for n in constants}}

    def decode(ids, lengths):
        state = ref.state_from(ref.encoder.predict(ids, verbose=0), len(ids))
        return greedy_tokens(step, state, np.full(len(ids), start_id, np.int32), end_id, max_steps)
    return decode


def keras_direct(ref, start_id: int, end_id: int, max_steps: int) -> Decode:
    """Keras models called directly each step (no predict() overhead)."""
    return lambda ids, lengths: ref.generate_ids(ids, start_id, end_id, max_steps)


def litert(ref, batch: int, time: int, start_id: int, end_id: int, max_steps: int, threads: int) -> Decode:
    """LiteRT interpreters for the encoder and the step decoder, converted with static shapes."""
    enc = _litert_interpreter(ref.encoder, batch, {"source": (batch, time)}, threads)
    constants = {t.name: (batch, time) + tuple(t.shape[2:]) for t in ref.decoder.inputs
                 if t.name in ref.constant_names}  # attention: the memory, keys and mask at the padded length
    dec = _litert_interpreter(ref.decoder, batch, constants, threads)
    names, constants = ref.state_names, ref.constant_names
    dec_inputs = [t.name for t in ref.decoder.inputs]

    def run(interp, feeds: list[np.ndarray]) -> list[np.ndarray]:
        runner, inputs, outputs = interp
        for detail, value in zip(inputs, feeds):
            runner.set_tensor(detail["index"], value)
        runner.invoke()
        return [runner.get_tensor(d["index"]) for d in outputs]

    def step(tokens, state):
        feed = {"step_input": tokens[:, None].astype(np.int32), **state}
        out = run(dec, [feed[n] for n in dec_inputs])
        return out[0], {**dict(zip(names, out[1:])), **{n: state[n] for n in constants}}

    def decode(ids, lengths):
        padded = np.zeros((batch, time), np.int32)
        padded[:, : ids.shape[1]] = ids
        state = ref.state_from(run(enc, [padded]), batch)
        return greedy_tokens(step, state, np.full(batch, start_id, np.int32), end_id, max_steps)
    return decode


def _litert_interpreter(model, batch: int, shapes: dict, threads: int):
    """Freeze ``model`` at a fixed batch (LiteRT needs static shapes) and load it."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    inputs = [keras.Input(shapes.get(t.name, (batch,) + tuple(t.shape[1:]))[1:], batch_size=batch, dtype=t.dtype,
                          name=t.name) for t in model.inputs]
    fixed = keras.Model(inputs, model(inputs if len(inputs) > 1 else inputs[0]))
    specs = [tf.TensorSpec(i.shape, i.dtype) for i in inputs]
    frozen = convert_variables_to_constants_v2(tf.function(lambda *a: fixed(list(a))).get_concrete_function(*specs))
    data = tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()
    interp = Interpreter(model_content=data, num_threads=threads)
    interp.allocate_tensors()
    by_index = sorted(interp.get_input_details(), key=lambda d: int(d["name"].rsplit("_", 1)[-1]))
    outputs = sorted(interp.get_output_details(), key=lambda d: _output_order(d["name"]))
    return interp, by_index, outputs


def _output_order(name: str) -> int:
    """'Identity' -> 0, 'Identity_2' -> 2: the frozen function's outputs in the model's order."""
    tail = name.split(":")[0].rsplit("_", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0


def plain_onnx(bundle_path, start_id: int, end_id: int, max_steps: int, threads: int) -> Decode:
    """What a user writes by hand today: the tf2onnx graphs, one session.run per step, argmax in numpy."""
    import json

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    manifest = json.loads((bundle_path / "manifest.json").read_text())
    enc = ort.InferenceSession(str(bundle_path / "encoder.onnx"), options, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(bundle_path / "decoder_step.onnx"), options, providers=["CPUExecutionProvider"])
    names = [s["name"] for s in manifest["state"]]
    fed = [s["name"] for s in manifest["state"] if s["init"] == "encoder"]
    constants = [c["name"] for c in manifest.get("constants", [])]
    out_names = [manifest["io"]["step_output"]] + [s["output"] for s in manifest["state"]]
    dec_inputs = {i.name for i in dec.get_inputs()}  # a mask the step graph does not read is not fed

    def decode(ids, lengths):
        feed = {"source": ids}
        if manifest["io"]["source_length"]:
            feed["source_length"] = lengths
        state = dict(zip(fed + constants, enc.run(fed + constants, feed)))
        state.update({s["name"]: np.zeros((len(ids), s["size"]), np.float32) for s in manifest["state"]
                      if s["init"] == "zeros"})
        token = np.full((len(ids), 1), start_id, np.int32)
        out, done = [], np.zeros(len(ids), bool)
        for _ in range(max_steps):
            feed = {"step_input": token, **state}
            logits, *values = dec.run(out_names, {k: v for k, v in feed.items() if k in dec_inputs})
            state.update(zip(names, values))
            token = logits.argmax(axis=1).astype(np.int32)[:, None]
            out.append(token[:, 0])
            done |= token[:, 0] == end_id
            if done.all():
                break
        tokens = np.stack(out, axis=1)
        return [row[: np.argmax(row == end_id)] if (row == end_id).any() else row for row in tokens]
    return decode


def runtime_mode(model, mode: str) -> Decode:
    """Our runtime, one of its modes."""
    return lambda ids, lengths: model.generate(ids, lengths=lengths, mode=mode)
