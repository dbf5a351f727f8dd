"""The Node.js runtime (bindings/node) against the Python runtime: its own tests pass under `npm test`, and it
gives the Python runtime's outputs on the same bundles (dates, attention, a brought keras-io model, a g2p quick
run), in every mode, and refuses the same corrupt bundles and inputs with the same error class, code and field
(runtime/manifest.schema.json, which both read, holds the manifest's structure and limits).

Needs node and the npm dependencies of bindings/node (`cd bindings/node && npm ci`, as .ci/run does).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq_edge.runtime import load

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bindings" / "node"
CLI = NODE_DIR / "cli.js"
DATA = ROOT / "tests" / "data"
INSTALL = "run `npm ci` in bindings/node (Node.js 18 or newer and npm needed)"


def _tool(name: str) -> str:
    """The path of node or npm, with the npm dependencies installed; a clear failure otherwise."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: install Node.js, then {INSTALL}")
    if not (NODE_DIR / "node_modules" / "onnxruntime-node").is_dir():
        pytest.fail(f"bindings/node/node_modules is missing: {INSTALL}")
    return path


def node_cli(bundle: Path, stdin: str | bytes, *args: str) -> subprocess.CompletedProcess:
    """`node cli.js BUNDLE ARGS` with ``stdin``; stdout and stderr as text."""
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    result = subprocess.run([_tool("node"), str(CLI), str(bundle), *args], input=data, capture_output=True,
                            timeout=300)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode("utf-8"),
                                       result.stderr.decode("utf-8"))


def node_outputs(bundle: Path, texts: list[str], mode: str | None = None) -> list[str]:
    result = node_cli(bundle, "".join(f"{t}\n" for t in texts), *(["--mode", mode] if mode else []))
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[:-1]


def python_outcome(call) -> str | list:
    """'ok', or [error class, code, field] of the error ``call()`` raises (as node_outcomes reports them)."""
    try:
        call()
    except Exception as exc:  # every refusal should be a Seq2SeqEdgeError; the comparison shows any other
        return [type(exc).__name__, getattr(exc, "code", None), getattr(exc, "field", None)]
    return "ok"


NODE_OUTCOMES = """
const { load } = require(process.argv[1]);
(async () => {
  const out = [];
  for (const job of JSON.parse(process.argv[2])) {
    try {
      const model = await load(job.dir);
      if (job.texts) await model.generateText(job.texts, { mode: job.mode, maxSteps: job.maxSteps });
      out.push('ok');
    } catch (e) {
      out.push([e.name, e.code === undefined ? null : e.code, e.field === undefined ? null : e.field]);
    }
  }
  console.log(JSON.stringify(out));
})();
"""


def node_outcomes(jobs: list[dict]) -> list:
    """For each job ({dir, texts?, mode?, maxSteps?}): 'ok', or [error class, code, field] of the Node runtime's
    refusal of load(dir) (then generateText(texts, {mode, maxSteps}))."""
    result = subprocess.run([_tool("node"), "-e", NODE_OUTCOMES, str(NODE_DIR), json.dumps(jobs)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_npm_test_passes():
    npm = _tool("npm")
    result = subprocess.run([npm, "test"], cwd=NODE_DIR, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"npm test failed:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"


# -- identical outputs ------------------------------------------------------------------------------------------

def _encodable(model, texts) -> list[str]:
    """The texts the bundle's source vocabulary can encode (task splits may hold symbols a tiny model never saw)."""
    keep = []
    for text in dict.fromkeys(texts):
        try:
            if text.strip() and model.source_vocab.encode(text):
                keep.append(text)
        except ValueError:
            pass
    return keep


def _task_sources(task: str, samples: int) -> list[str]:
    from seq2seq_edge.training.config import TrainConfig
    from seq2seq_edge.training.tasks import make_splits

    splits = make_splits(task, TrainConfig(samples=samples, seed=11, validation_split=0.05, test_split=0.25))
    return [source for source, _ in splits.test]


def _keras_io_texts(model) -> list[str]:
    vocab = model.source_vocab
    assert {vocab.pad_id, vocab.unk_id, vocab.start_id, vocab.end_id} == {None}  # every token is a symbol
    symbols, rng = list(vocab.tokens), random.Random(0)
    return [json.load(open(DATA / "golden.json"))["keras_io"]["inputs"][0]] + [
        "".join(rng.choice(symbols) for _ in range(rng.randint(1, 12))) for _ in range(250)]


def _compare_every_mode(bundle: Path, texts: list[str]) -> None:
    """Node's CLI and Python's generate_text, one onnxruntime thread each: the int8 loops' tokens depend on the
    thread count (and on the rows decoded together), in either runtime."""
    model = load(bundle, threads=1)
    assert len(texts) >= 200, f"only {len(texts)} inputs"
    for mode in model.modes:
        expected = model.generate_text(texts, mode=mode)
        got = node_outputs(bundle, texts, mode)
        assert len(got) == len(expected)
        differ = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
        assert not differ, f"{bundle.name} mode {mode}: {len(differ)} outputs differ, e.g. {differ[:5]}"
    assert node_outputs(bundle, texts) == model.generate_text(texts)  # the default mode


@pytest.mark.parametrize("name", ["dates_tiny", "dates_attention_tiny"])
def test_dates_bundles_give_pythons_outputs(name):
    bundle = DATA / name
    _compare_every_mode(bundle, _encodable(load(bundle), _task_sources("dates", 1200)))


def test_keras_io_bundle_gives_pythons_outputs():
    """A user's own model whose encoder sees padding: each length group is encoded apart."""
    bundle = DATA / "keras_io_tiny"
    _compare_every_mode(bundle, _keras_io_texts(load(bundle)))


def test_g2p_bundle_gives_pythons_outputs(g2p_bundle):
    """A g2p quick run (conftest.py g2p_bundle): a reversed source, a space-separated target, fp32 and int8 loops."""
    model = load(g2p_bundle)
    assert model.source_vocab.reverse and model.target_vocab.separator == " "
    _compare_every_mode(g2p_bundle, _encodable(model, _task_sources("g2p", 1500)))


def _attention_variant(out: Path, padding: str, fed_mask: bool) -> Path:
    """dates_attention_tiny rewired (with onnx) so that its encoders read `padding` ('mask': lengths counted from
    the non-pad ids; 'none': every row taken as whole) and, unless `fed_mask`, its step graph takes no mask (it
    attends to every position it is given): the paths where the runtime groups rows by source length."""
    import onnx
    from onnx import TensorProto, helper

    shutil.copytree(DATA / "dates_attention_tiny", out)
    manifest = json.loads((out / "manifest.json").read_text())

    def rewrite(graph: str, drop: str, nodes: list) -> None:
        model = onnx.load(str(out / manifest["graphs"][graph]["file"]))
        kept = [i for i in model.graph.input if i.name != drop]
        del model.graph.input[:]
        model.graph.input.extend(kept)
        existing = list(model.graph.node)
        del model.graph.node[:]
        model.graph.node.extend(nodes + existing)  # topological order: the new nodes feed the old ones
        data = model.SerializeToString()
        (out / manifest["graphs"][graph]["file"]).write_bytes(data)
        manifest["graphs"][graph]["sha256"] = hashlib.sha256(data).hexdigest()
        manifest["graphs"][graph]["inputs"] = [t for t in manifest["graphs"][graph]["inputs"] if t["name"] != drop]

    if padding != "lengths":
        pad = helper.make_tensor("pad_id", TensorProto.INT32, [], [0 if padding == "mask" else -1])
        lengths = [helper.make_node("Constant", [], ["pad_id"], value=pad),
                   helper.make_node("Equal", ["source", "pad_id"], ["is_pad"]),
                   helper.make_node("Not", ["is_pad"], ["is_token"]),
                   helper.make_node("Cast", ["is_token"], ["token_i32"], to=TensorProto.INT32),
                   helper.make_node("Constant", [], ["axis1"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])),
                   helper.make_node("ReduceSum", ["token_i32", "axis1"], ["source_length"], keepdims=0)]
        for graph in ("encoder", "encoder_int8"):
            rewrite(graph, "source_length", lengths)
        manifest["io"].update(padding=padding, source_length=None)
    if not fed_mask:
        ones = [helper.make_node("Shape", ["memory"], ["memory_shape"], start=0, end=2),
                helper.make_node("ConstantOfShape", ["memory_shape"], ["source_mask"],
                                 value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))]
        rewrite("decoder_step", "source_mask", ones)
        next(c for c in manifest["constants"] if c["kind"] == "mask")["decoder_input"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.mark.parametrize("padding, fed_mask", [("lengths", False), ("mask", True), ("none", False)])
def test_attention_bundles_that_group_rows_by_length_give_pythons_outputs(tmp_path, padding, fed_mask):
    bundle = _attention_variant(tmp_path / "bundle", padding, fed_mask)
    model = load(bundle, threads=1)
    assert (model.manifest.io.padding, model.manifest.constants[-1].decoder_input) == (padding, fed_mask)
    texts = _encodable(model, _task_sources("dates", 1200))
    _compare_every_mode(bundle, texts)
    same = sum(a == b for a, b in zip(model.generate_text(texts, mode="step"), load(DATA / "dates_attention_tiny")
                                      .generate_text(texts, mode="step")))
    assert same >= 0.95 * len(texts)  # the rewired graphs still compute (about) the same model


def test_the_two_command_lines_agree():
    """`node cli.js` and `seq2seq-edge run` on the same stdin: blank lines skipped, \\r\\n endings, max steps."""
    golden = json.load(open(DATA / "golden.json"))["dates"]["inputs"]
    stdin = "\r\n".join(golden[:2]) + "\n\n  \n" + "\n".join(golden[2:])
    for args in (["--threads", "1"], ["--mode", "step", "--max-steps", "5", "--threads", "2"]):
        python = subprocess.run([sys.executable, "-m", "seq2seq_edge", "run", str(DATA / "dates_tiny"), *args],
                                input=stdin, capture_output=True, text=True, timeout=300)
        node = node_cli(DATA / "dates_tiny", stdin, *args)
        assert (python.returncode, python.stderr) == (0, "")
        assert (node.returncode, node.stdout, node.stderr) == (0, python.stdout, "")


# -- identical refusals -----------------------------------------------------------------------------------------

def _edit(change):
    def edit(bundle: Path) -> None:
        data = json.loads((bundle / "manifest.json").read_text())
        change(data)
        (bundle / "manifest.json").write_text(json.dumps(data))
    return edit


def _replace_graph(graph: str, data: bytes):
    def replace(bundle: Path) -> None:
        manifest = json.loads((bundle / "manifest.json").read_text())
        (bundle / manifest["graphs"][graph]["file"]).write_bytes(data)
        manifest["graphs"][graph]["sha256"] = hashlib.sha256(data).hexdigest()
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    return replace


def _tamper(bundle: Path) -> None:
    file = bundle / "encoder.onnx"
    data = bytearray(file.read_bytes())
    data[-10] ^= 0xFF
    file.write_bytes(bytes(data))


def _external_data_graph(in_subgraph: bool) -> bytes:
    """A real ONNX graph whose one initializer lives in ../secret.txt (as tests/test_hostile_bundles.py builds)."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.txt"), ("offset", "0"), ("length", "4")):
        weight.external_data.add(key=key, value=value)
    out = helper.make_tensor_value_info("out", TensorProto.UINT8, [4])
    if not in_subgraph:
        graph = helper.make_graph([helper.make_node("Identity", ["w"], ["out"])], "reader", [], [out], [weight])
    else:
        branch = helper.make_graph([helper.make_node("Identity", ["w"], ["b"])], "branch", [],
                                   [helper.make_tensor_value_info("b", TensorProto.UINT8, [4])], [weight])
        node = helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=branch)
        graph = helper.make_graph([node], "reader", [], [out], [helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _write(name: str, content: bytes):
    return lambda bundle: (bundle / name).write_bytes(content)


CORRUPTIONS = {
    "tampered graph": _tamper,
    "missing graph": lambda b: (b / "decoder_step.onnx").unlink(),
    "missing manifest": lambda b: (b / "manifest.json").unlink(),
    "missing directory": lambda b: shutil.rmtree(b),
    "bad format": _edit(lambda m: m.update(format="seq2seq-edge/2")),
    "not JSON": _write("manifest.json", b'{"format": "seq2seq-edge/1",\n  "family": }'),
    "not UTF-8": _write("manifest.json", b'{"format": "\xe9t\xe9"}'),
    "a BOM": _write("manifest.json", b'\xef\xbb\xbf{}'),
    "nested too deeply": _write("manifest.json", b"[" * 100_000 + b"]" * 100_000),
    "not an object": _write("manifest.json", b"[1, 2]"),
    "external data": lambda b: _replace_graph("encoder", _external_data_graph(False))(b),
    "external data in a subgraph": lambda b: _replace_graph("decoder_step", _external_data_graph(True))(b),
    "truncated graph": lambda b: _replace_graph("encoder", (b / "encoder.onnx").read_bytes()[:300])(b),
    "graph path": _edit(lambda m: m["graphs"]["encoder"].update(file="../dates_tiny/encoder.onnx")),
    "graph name past NAME_MAX": _edit(lambda m: m["graphs"]["encoder"].update(file="😀" * 256)),  # 1,024 bytes
    "graph shape": _edit(lambda m: m["graphs"]["decoder_step"]["outputs"][0].update(shape=["batch", 3])),
    "graph dtype": _edit(lambda m: m["graphs"]["encoder"]["inputs"][1].update(dtype="float32")),
    "graph names": _edit(lambda m: m["graphs"]["decode_loop"]["inputs"][0].update(name="h7")),
    "state size": _edit(lambda m: [s.update(size=12) for s in m["state"]]),
    "unknown mode graph": _edit(lambda m: m["decode"]["modes"]["fused"].update(decoder="nothing")),
    "strategies": _edit(lambda m: m["decode"].update(strategies=["greedy"])),
    "huge max_steps": _edit(lambda m: m["decode"].update(max_steps=10**30)),
    "fractional size": _edit(lambda m: m["state"][0].update(size=32.5)),  # (32.0 is the integer 32 in JSON)
    "vocabulary": _edit(lambda m: m["target"]["vocabulary"].update(separator="ab")),
    "mask constant": _edit(lambda m: m["constants"][2].update(decoder_input=False)),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_bundles_are_refused_alike(case, tmp_path):
    """The same error class, code and field from both runtimes; Node's command line prints one `error:` line."""
    bundle = tmp_path / "bundle"
    shutil.copytree(DATA / "dates_attention_tiny", bundle)
    (tmp_path / "secret.txt").write_bytes(b"key!")
    CORRUPTIONS[case](bundle)
    expected = python_outcome(lambda: load(bundle))
    assert expected[0] == "BundleError" and expected[1] not in (None, "bundle"), expected
    assert node_outcomes([{"dir": str(bundle)}]) == [expected]
    result = node_cli(bundle, "14 juillet 2023\n")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and len(result.stderr) < 500


def test_a_whole_number_written_with_a_fraction_loads_alike(tmp_path):
    """JSON has one number type: a size of 32.0 is the size 32 in both runtimes."""
    bundle = tmp_path / "bundle"
    shutil.copytree(DATA / "dates_attention_tiny", bundle)
    _edit(lambda m: (m["state"][0].update(size=32.0), m["decode"].update(max_steps=20.0)))(bundle)
    assert python_outcome(lambda: load(bundle)) == "ok" == node_outcomes([{"dir": str(bundle)}])[0]
    texts = ["14 juillet 2023", "3 mei 1961"]
    assert node_outputs(bundle, texts) == load(bundle).generate_text(texts)


def _mutate(manifest: dict, rng: random.Random) -> None:
    """One random change: a field dropped, retyped or given another value, anywhere in the manifest."""
    values = [None, True, 0, -1, 7, 2**31 + 1, 1.5, "", "x", "step", "fused", "h0", "encoder", "decoder_step",
              "features", "gru", "mask", "none", "batch", "int64", [], ["batch", 32], {}, "../x", "é" * 300]
    places, stack = [], [(manifest, ())]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node[:4]) if isinstance(node, list) else ()
        for key, value in items:
            if path[:1] == ("source",) and key == "tokens" or path[:1] == ("target",) and key == "tokens":
                continue
            places.append((node, key))
            stack.append((value, path + (key,)))
    node, key = rng.choice(places)
    if isinstance(node, dict) and rng.random() < 0.25:
        del node[key]
    else:
        node[key] = rng.choice(values)


def test_randomly_altered_manifests_are_judged_alike(tmp_path):
    """Each of many seeded random manifest edits: loaded by both runtimes, or refused by both with the same error
    class, code and field."""
    rng = random.Random(1234)
    cases = []
    for i in range(300):
        name = rng.choice(["dates_tiny", "dates_attention_tiny", "keras_io_tiny"])
        bundle = tmp_path / f"{i:03d}"
        bundle.mkdir()
        for graph in (DATA / name).glob("*.onnx"):
            shutil.copy(graph, bundle)
        manifest = json.loads((DATA / name / "manifest.json").read_text())
        for _ in range(rng.choice([1, 1, 2])):
            _mutate(manifest, rng)
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        cases.append((str(bundle), python_outcome(lambda: load(bundle))))
    node = node_outcomes([{"dir": d} for d, _ in cases])
    differ = [(d, p, n) for (d, p), n in zip(cases, node) if p != n]
    assert not differ, f"{len(differ)} of {len(cases)} differ, e.g. {differ[:3]}"
    assert all(p == "ok" or p[0] == "BundleError" for _, p in cases)
    assert 20 < sum(p == "ok" for _, p in cases) < 280  # both outcomes were exercised
    assert len({p[1] for _, p in cases if p != "ok"}) >= 8  # refusals of many kinds, not one


def test_input_refusals_are_the_same(tmp_path):
    """Unknown symbols, a bad mode or max_steps; step mode without the step graph: the same error class and code;
    invalid UTF-8 on stdin: the same exit status, output and first words."""
    dates = load(DATA / "dates_tiny")
    long = "1" * 50 + "€" + "2" * 50
    cases = [
        ({"texts": ["14 ~ 2023"]}, lambda: dates.generate_text(["14 ~ 2023"])),
        ({"texts": [long]}, lambda: dates.generate_text([long])),
        ({"texts": ["3 mei 1961"], "mode": "beam"}, lambda: dates.generate_text(["3 mei 1961"], mode="beam")),
        ({"texts": ["3 mei 1961"], "maxSteps": 20}, lambda: dates.generate_text(["3 mei 1961"], 20)),
        ({"texts": ["3 mei 1961", ""]}, lambda: dates.generate_text(["3 mei 1961", ""])),
    ]
    expected = [python_outcome(call) for _, call in cases]
    assert [e[:2] for e in expected] == [["UnknownTokenError", "unknown_token"]] * 2 + [["InputError", "input"]] * 3
    assert node_outcomes([{"dir": str(DATA / "dates_tiny"), **job} for job, _ in cases]) == expected
    stdin = b"3 mei 1961\n14 juil\xe9t 2023\n"
    python = subprocess.run([sys.executable, "-m", "seq2seq_edge", "run", str(DATA / "dates_tiny")], input=stdin,
                            capture_output=True, timeout=300)
    node = node_cli(DATA / "dates_tiny", stdin)
    same = "error: stdin line 2 is not valid UTF-8 ("
    assert python.stderr.decode().startswith(same) and node.stderr.startswith(same)
    assert (node.returncode, node.stdout) == (python.returncode, python.stdout.decode())
    bundle = tmp_path / "fused_only"
    shutil.copytree(DATA / "dates_tiny", bundle)
    _edit(lambda m: (m["graphs"].pop("decoder_step"), m["decode"]["modes"].pop("step"),
                     m["decode"].update(strategies=["greedy"])))(bundle)
    (bundle / "decoder_step.onnx").unlink()
    step = python_outcome(lambda: load(bundle).generate_text(["3 mei 1961"], mode="step"))
    assert step == ["InputError", "input", None]
    assert node_outcomes([{"dir": str(bundle), "texts": ["3 mei 1961"], "mode": "step"}]) == [step]
    assert node_outputs(bundle, ["3 mei 1961"]) == load(bundle).generate_text(["3 mei 1961"])


# -- one schema file, every bound enforced alike ------------------------------------------------------------------

def test_both_runtimes_read_the_one_schema_file():
    """Node reads runtime/manifest.schema.json in a checkout and the same bytes from its npm package."""
    from seq2seq_edge.runtime import manifest as spec
    from seq2seq_edge.runtime.schema import SCHEMA_FILE

    script = ("const s = require(process.argv[1] + '/lib/schema');"
              " const m = require(process.argv[1] + '/lib/manifest');"
              " console.log(JSON.stringify([s.SCHEMA, m.MAX_STEPS, m.FORMAT, m.strategiesFor({ step: {} })]));")
    result = subprocess.run([_tool("node"), "-e", script, str(NODE_DIR)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    schema, max_steps, fmt, strategies = json.loads(result.stdout)
    assert schema == json.loads(SCHEMA_FILE.read_text())
    assert (max_steps, fmt, tuple(strategies)) == (spec.MAX_STEPS, spec.FORMAT, spec.STEP_STRATEGIES)
    assert not (NODE_DIR / "lib" / "manifest.schema.json").exists()  # a checkout has no second copy


def test_the_npm_package_carries_the_schema(tmp_path):
    result = subprocess.run([_tool("npm"), "pack", "--pack-destination", str(tmp_path)], cwd=NODE_DIR,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not (NODE_DIR / "lib" / "manifest.schema.json").exists()  # postpack took the copy away again
    import tarfile

    with tarfile.open(next(tmp_path.glob("*.tgz"))) as tar:
        tar.extractall(tmp_path, filter="data")
    packaged = tmp_path / "package" / "lib" / "manifest.schema.json"
    assert packaged.read_bytes() == (ROOT / "runtime" / "manifest.schema.json").read_bytes()
    assert not (tmp_path / "package" / "lib" / "py.js").exists() and not (tmp_path / "package" / "test").exists()
    script = "console.log(require.resolve(process.argv[1] + '/lib/manifest.schema.json'))"
    found = subprocess.run([_tool("node"), "-e", f"require(process.argv[1] + '/lib/schema'); {script}",
                            str(tmp_path / "package")], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0 and found.stdout.strip() == str(packaged), found.stderr


def test_one_past_every_bound_is_refused_alike(tmp_path):
    """Each bound of the schema, one past it: the same code and field from both runtimes (tests/schema_bounds.py;
    tests/runtime/test_schema.py checks that every bound in the file has a row)."""
    from schema_bounds import BOUNDS, expected, write_case

    folders = [write_case(row, tmp_path / f"{i:02d}") for i, row in enumerate(BOUNDS)]
    want = [["BundleError", *expected(row)] for row in BOUNDS]
    assert [python_outcome(lambda f=f: load(f)) for f in folders] == want
    assert node_outcomes([{"dir": str(f)} for f in folders]) == want
