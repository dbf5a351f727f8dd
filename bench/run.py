"""Run the benchmark in one process, on the same weights and inputs, and print the table."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from . import engines
from .floors import machine_rates, step_floor_us, step_macs
from .models import BUILTIN, KERAS_IO, NMT, NMT_SOURCE_LENGTH, make_char_run, make_keras_io_models, sample_sources

__all__ = ["bench", "Row"]


@dataclass
class Row:
    model: str
    batch: int
    engine: str
    us_per_token: float
    tokens: int
    identical: bool | None
    differing: tuple[int, int] = (0, 0)  # (rows unlike Keras's, rows compared)
    ratio: float = 0.0     # time over our fastest exact mode's, same model and batch
    vs_litert: float = 0.0  # time over LiteRT's
    vs_floor: float = 0.0   # time over the step's floor (its arithmetic, or its weights read from cache)


@dataclass
class Prepared:
    """One benchmark model: its bundle, inputs, the Keras reference all engines are checked against, and the
    multiply-accumulates of one decoder step."""

    name: str
    bundle: Path
    sources: list[str]
    ref: object  # KerasSeq2Seq, or anything with its generate_ids
    macs: int
    ids: Callable | None = None  # sources -> (ids, lengths); default: the bundle's source vocabulary
    engines: Callable | None = None  # (batch, time, (start, end, max_steps), threads) -> [(engine, make)]


def _time(decode, batches, budget_s: float) -> tuple[float, int, list]:
    """Decode batches until the budget is spent (at least one); (us per generated token, tokens, outputs)."""
    decode(*batches[0])  # warm-up: first-call allocations and lazy initialisation
    tokens, outputs, started = 0, [], time.perf_counter()
    for ids, lengths in batches:
        rows = decode(ids, lengths)
        outputs.extend(rows)
        tokens += sum(len(r) + 1 for r in rows)  # +1: the step that produced the end token
        if time.perf_counter() - started > budget_s:
            break
    return (time.perf_counter() - started) * 1e6 / tokens, tokens, outputs


def _differing(a: list, b: list) -> tuple[int, int]:
    """(rows of ``a`` unlike ``b``'s, rows compared): an engine may stop early, at its time budget."""
    pairs = list(zip(a, b))
    return sum(not np.array_equal(x, y) for x, y in pairs), len(pairs)


def _prepare(model: str, workdir: Path) -> Prepared:
    from ..export import export_run
    from ..training import RunDir
    from ..training.inference import KerasSeq2Seq
    from ..training.tasks import TokenSplits, make_splits

    if model == KERAS_IO:
        return _prepare_keras_io(workdir / model)
    if model == NMT:
        return _prepare_nmt(workdir / model)
    if model in BUILTIN:
        run = make_char_run(BUILTIN[model], workdir / model / "run")
        vocab = RunDir(run).vocabularies()[0]
        sources = sample_sources(vocab, 256, length=BUILTIN[model].source_length)
    else:
        run = Path(model)
        config = RunDir(run).config
        splits = make_splits(config.task, config.train)
        if not isinstance(splits, TokenSplits):
            raise ValueError(f"{model}: bench decodes token models; this run's task {config.task!r} is not one")
        sources = [s for s, _ in splits.test[:256]]
    bundle = export_run(run, workdir / Path(model).name / "bundle", parity_inputs=sources, parity_samples=64).path
    net, config = RunDir(run).load_model(), RunDir(run).config
    return Prepared(Path(model).name, bundle, sources, KerasSeq2Seq.from_run(net, config), step_macs(net, config))


def _prepare_keras_io(workdir: Path) -> Prepared:
    """The keras-io example's encoder_model / decoder_model, exported with export_keras as a user would; the
    reference is the user's models behind the same thin wrapper export converts (ids in, our names)."""
    from ..export import export_keras
    from ..export.byo import decoder_contract, encoder_feeds, wrap_models
    from ..runtime.vocab import Vocabulary
    from ..training.inference import KerasSeq2Seq

    encoder_model, decoder_model, source_tokens, target_tokens = make_keras_io_models()
    sources = sample_sources(Vocabulary(tuple(source_tokens), pad_id=None), 256,
                             length=BUILTIN[KERAS_IO].source_length)  # equal lengths: the example never pads
    bundle = export_keras(encoder_model, decoder_model, workdir / "bundle", source_tokens=source_tokens,
                          target_tokens=target_tokens, start_token="\t", end_token="\n", max_steps=40,
                          parity_sources=sources[:64]).path
    contract = decoder_contract(decoder_model)
    feeds = encoder_feeds(encoder_model, contract, None)
    encoder, decoder, _, _ = wrap_models(encoder_model, decoder_model, contract, feeds, source_tokens, target_tokens)
    ref = KerasSeq2Seq(encoder, decoder, [slot.name for slot in contract.slots], tokens=True)
    by_kind = {type(layer).__name__: layer for layer in decoder_model.layers}
    macs = sum(w.size for w in by_kind["LSTM"].get_weights()[:2]) + by_kind["Dense"].get_weights()[0].size
    return Prepared(KERAS_IO, bundle, sources, ref, macs)


def bench(models: list[str], batches: list[int], *, threads: int = 1, budget_s: float = 2.0,
          print_fn: Callable[[str], None] = print) -> list[Row]:
    """Benchmark every model at every batch size; returns the rows it printed."""
    from ..runtime import load

    rows: list[Row] = []
    rates = machine_rates(threads)
    print_fn(f"machine: {rates['cores']} cores; matmul {rates['gflops']:.1f} GFLOP/s (onnxruntime, {threads} "
             f"thread(s), as the engines run); memory {rates['gbps']:.1f} GB/s, cache {rates['gbps_cache']:.1f} "
             "GB/s (numpy copies)")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            p = _prepare(model, Path(tmp))
            runtime = load(p.bundle, threads=threads)
            tv = runtime.target_vocab
            args = (tv.start_id, tv.end_id, runtime.max_steps)
            for batch in batches:
                encode = p.ids or runtime.source_vocab.encode_batch
                data = [encode(p.sources[i:i + batch]) for i in range(0, len(p.sources) - batch + 1, batch)]
                reference = [r for ids, _ in data for r in p.ref.generate_ids(ids, *args)]
                time_len = max(ids.shape[1] for ids, _ in data)
                candidates = (p.engines or partial(_keras_engines, p))(batch, time_len, args, threads)
                candidates += [(f"seq2seq-edge {mode}", lambda mode=mode: engines.runtime_mode(runtime, mode))
                               for mode in runtime.modes]
                group = []
                for engine, make in candidates:
                    budget = budget_s / 4 if engine.startswith("keras") else budget_s
                    us, tokens, outputs = _time(make(), data, budget)
                    differing = _differing(outputs, reference)
                    group.append(Row(p.name, batch, engine, us, tokens, differing[0] == 0, differing))
                ours = min(r.us_per_token for r in group
                           if r.engine.startswith("seq2seq-edge") and "int8" not in r.engine)
                litert = next(r.us_per_token for r in group if r.engine == "litert")
                floor = step_floor_us(p.macs, rates, batch)
                floor_us = max(floor["flops_us"], floor["cache_us"])
                for r in group:
                    r.ratio, r.vs_litert, r.vs_floor = (r.us_per_token / ours, r.us_per_token / litert,
                                                        r.us_per_token / floor_us)
                rows += group
                _print_group(group, floor_us, print_fn)
            _print_extras(p.name, p.bundle, p.macs, rates, print_fn)
    return rows


def _keras_engines(p: Prepared, batch: int, time_len: int, args: tuple, threads: int) -> list:
    """The engines every Keras model is timed on, beside our runtime's modes."""
    return [("keras predict() per step", lambda: engines.keras_predict(p.ref, *args)),
            ("keras direct calls", lambda: engines.keras_direct(p.ref, *args)),
            ("litert", lambda: engines.litert(p.ref, batch, time_len, *args, threads)),
            ("tf2onnx graphs, python loop", lambda: engines.plain_onnx(p.bundle, *args, threads))]


def _prepare_nmt(workdir: Path) -> Prepared:
    """TensorFlow's NMT tutorial (subclassed encoder and decoder) at its own size, exported with
    export_functions through the README's glue; its engines are the tutorial's translate loop, LiteRT of
    the same two functions and the plain tf2onnx loop."""
    from ..export import export_functions
    from . import nmt

    translator = nmt.make_translator()
    rng = np.random.default_rng(0)
    sources = [row.tolist() for row in rng.integers(4, 5000, size=(256, NMT_SOURCE_LENGTH))]
    encode, step = nmt.glue(translator)
    tokens = nmt.word_tokens(5000)
    bundle = export_functions(encode, step, workdir / "bundle", source_tokens=tokens, target_tokens=tokens,
                              start_token="[START]", end_token="[END]", max_steps=40, zero_states={"state": 256},
                              parity_sources=sources[:64]).path
    ref = nmt.TranslateReference(translator)

    def ids(rows):
        return np.asarray(rows, np.int32), np.full(len(rows), len(rows[0]), np.int32)

    def nmt_engines(batch, time_len, args, threads):
        return [("keras: tutorial's translate", lambda: ref),
                ("litert", lambda: nmt.litert(translator, batch, time_len, *args, threads)),
                ("tf2onnx graphs, python loop", lambda: engines.plain_onnx(bundle, *args, threads))]
    return Prepared(NMT, bundle, sources, ref, nmt.step_macs(translator, NMT_SOURCE_LENGTH), ids, nmt_engines)


def _print_group(group: list[Row], floor_us: float, print_fn) -> None:
    r0 = group[0]
    print_fn(f"\n{r0.model}, batch {r0.batch} (floor per token {floor_us:.1f} us: the step's arithmetic or its "
             "weights read from cache, whichever is longer; the encoder is not in it)")
    print_fn(f"| {'engine':30} | {'us/token':>9} | {'tokens/s':>9} | {'x ours':>7} | {'x LiteRT':>8} | "
             f"{'x floor':>7} | identical to Keras |")
    print_fn(f"|{'-' * 32}|{'-' * 11}|{'-' * 11}|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 20}|")
    for r in group:
        same = {True: "yes", False: f"no: {r.differing[0]} of {r.differing[1]} rows", None: "-"}[r.identical]
        print_fn(f"| {r.engine:30} | {r.us_per_token:9.1f} | {1e6 / r.us_per_token:9.0f} | {r.ratio:7.2f} | "
                 f"{r.vs_litert:8.2f} | {r.vs_floor:7.2f} | {same:18} |")


def _print_extras(name: str, bundle: Path, macs: int, rates: dict, print_fn) -> None:
    from ..export.writing import mode_sizes

    sizes = {p.name: p.stat().st_size for p in sorted(bundle.iterdir())}
    print_fn(f"\n{name}: bundle {sum(sizes.values()) / 1e6:.2f} MB (" +
             ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sizes.items()) + ")")
    alone = mode_sizes(bundle, json.loads((bundle / "manifest.json").read_text(encoding="utf-8")))
    print_fn(f"{name}: size of each mode alone (export --modes MODE; its encoder and decoder graphs): " +
             ", ".join(f"{mode} {size / 1e6:.2f} MB" for mode, size in alone.items()))
    print_fn(f"{name}: runtime peak memory (a process that loads the bundle and decodes 32 inputs): "
             f"{_peak_memory_mb(bundle):.0f} MB")
    for batch in (1, 32):
        floor = step_floor_us(macs, rates, batch)
        print_fn(f"{name}: floor per token at batch {batch}: {floor['flops_us']:.1f} us of arithmetic "
                 f"({floor['flops'] / 1e6:.2f} MFLOP per sequence-step); reading the {floor['bytes'] / 1e6:.2f} MB "
                 f"of float32 weights once per step takes {floor['cache_us']:.1f} us from cache, "
                 f"{floor['bytes_us']:.1f} us from memory")


def _peak_memory_mb(bundle: Path) -> float:
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's (TensorFlow-sized) peak across exec.
    code = ("import numpy as np\nfrom seq2seq_edge.runtime import load\n"
            f"m = load({str(bundle)!r}, threads=1)\n"
            "ids = np.random.default_rng(0).integers(4, len(m.source_vocab), size=(32, 20)).astype(np.int32)\n"
            "[m.generate(ids, mode=mode) for mode in m.modes]\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024
