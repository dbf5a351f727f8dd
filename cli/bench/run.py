"""Run the benchmark in one process, on the same weights and inputs, and print the table."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import engines
from .floors import machine_rates, step_floor_us, step_macs
from .models import BUILTIN, make_char_run, sample_sources

__all__ = ["bench", "Row"]


@dataclass
class Row:
    model: str
    batch: int
    engine: str
    us_per_token: float
    tokens: int
    identical: bool | None
    ratio: float = 0.0


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


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def _prepare(model: str, workdir: Path) -> tuple[str, Path, Path, list[str]]:
    from ...export import export_run
    from ...training import RunDir
    from ...training.tasks import TokenSplits, make_splits

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
    return Path(model).name, run, bundle, sources


def bench(models: list[str], batches: list[int], *, threads: int = 1, budget_s: float = 2.0,
          print_fn: Callable[[str], None] = print) -> list[Row]:
    """Benchmark every model at every batch size; returns the rows it printed."""
    from ...runtime import load
    from ...training import RunDir
    from ...training.inference import KerasSeq2Seq

    rows: list[Row] = []
    rates = machine_rates()
    print_fn(f"machine: {rates['cores']} cores, matmul {rates['gflops']:.1f} GFLOP/s, memory {rates['gbps']:.1f} GB/s, "
             f"cache {rates['gbps_cache']:.1f} GB/s (numpy); engines use {threads} thread(s)")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            name, run, bundle, sources = _prepare(model, Path(tmp))
            runtime = load(bundle, threads=threads)
            net, config = RunDir(run).load_model(), RunDir(run).config
            ref = KerasSeq2Seq.from_run(net, config)
            tv = runtime.target_vocab
            args = (tv.start_id, tv.end_id, runtime.max_steps)
            for batch in batches:
                data = [runtime.source_vocab.encode_batch(sources[i:i + batch])
                        for i in range(0, len(sources) - batch + 1, batch)]
                reference = [r for ids, _ in data for r in ref.generate_ids(ids, *args)]
                time_len = max(ids.shape[1] for ids, _ in data)
                candidates = [("keras predict() per step", lambda: engines.keras_predict(ref, *args)),
                              ("keras direct calls", lambda: engines.keras_direct(ref, *args)),
                              ("litert", lambda: engines.litert(ref, batch, time_len, *args, threads)),
                              ("tf2onnx graphs, python loop", lambda: engines.plain_onnx(bundle, *args, threads))]
                candidates += [(f"seq2seq-edge {mode}", lambda mode=mode: engines.runtime_mode(runtime, mode))
                               for mode in runtime.modes]
                group = []
                for engine, make in candidates:
                    budget = budget_s / 4 if engine.startswith("keras") else budget_s
                    us, tokens, outputs = _time(make(), data, budget)
                    group.append(Row(name, batch, engine, us, tokens, _same(outputs, reference)))
                ours = min(r.us_per_token for r in group if r.engine.startswith("seq2seq-edge") and "int8" not in r.engine)
                for r in group:
                    r.ratio = r.us_per_token / ours
                rows += group
                _print_group(group, print_fn)
            _print_extras(name, bundle, step_macs(net, config), rates, print_fn)
    return rows


def _print_group(group: list[Row], print_fn) -> None:
    r0 = group[0]
    print_fn(f"\n{r0.model}, batch {r0.batch}")
    print_fn(f"| {'engine':30} | {'us/token':>9} | {'tokens/s':>9} | {'x ours':>7} | identical to Keras |")
    print_fn(f"|{'-' * 32}|{'-' * 11}|{'-' * 11}|{'-' * 9}|{'-' * 20}|")
    for r in group:
        same = {True: "yes", False: "no", None: "-"}[r.identical]
        print_fn(f"| {r.engine:30} | {r.us_per_token:9.1f} | {1e6 / r.us_per_token:9.0f} | {r.ratio:7.2f} | {same:18} |")


def _print_extras(name: str, bundle: Path, macs: int, rates: dict, print_fn) -> None:
    sizes = {p.name: p.stat().st_size for p in sorted(bundle.iterdir())}
    print_fn(f"\n{name}: bundle {sum(sizes.values()) / 1e6:.2f} MB (" +
             ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sizes.items()) + ")")
    modes = json.loads((bundle / "manifest.json").read_text())["decode"]["modes"]
    graphs = json.loads((bundle / "manifest.json").read_text())["graphs"]
    print_fn(f"{name}: size of each mode alone (export --modes MODE; its encoder and decoder graphs): " +
             ", ".join(f"{mode} {sum(sizes[graphs[g]['file']] for g in set(pair.values())) / 1e6:.2f} MB"
                       for mode, pair in modes.items()))
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
