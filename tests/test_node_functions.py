"""The Node.js runtime on a bundle written by export_functions (TensorFlow's NMT tutorial, tests/nmt_tutorial.py):
its step graph takes no source mask (the mask constant has decoder_input false), so on a batch of rows of
different source lengths both runtimes run rows of equal length together, in step mode and in the fused loop
built from that step graph. Node must give the Python runtime's outputs, row for row, in every mode.

Needs node and the npm dependencies of bindings/node (`cd bindings/node && npm ci`).
"""

from __future__ import annotations

import json
import random
import subprocess

import numpy as np
import pytest

from seq2seq_edge.runtime import load

import nmt_tutorial as nmt
from test_functions import export
from test_node_binding import NODE_DIR, _tool

NODE_GENERATE = """
const { load } = require(process.argv[1]);
(async () => {
  const model = await load(process.argv[2], { threads: 1 });
  const texts = JSON.parse(process.argv[3]);
  const out = {};
  for (const mode of model.modes) out[mode] = await model.generateText(texts, { mode });
  console.log(JSON.stringify(out));
})();
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    translator = nmt.train_reverse(units=16, epochs=3)
    rows, _, _, _ = nmt.reverse_data(8, seed=1)
    out = tmp_path_factory.mktemp("node_functions") / "nmt"
    result = export(translator, out, parity_sources=[r.tolist() for r in rows])
    assert result.parity.ok, result.parity.summary()
    return out


def test_node_decodes_a_batch_of_mixed_source_lengths_as_python_in_every_mode(bundle):
    model = load(bundle, threads=1)
    assert [c.decoder_input for c in model.manifest.constants] == [True, False]  # the step graph takes no mask
    assert "step" in model.modes and "fused" in model.modes
    rng = random.Random(0)
    texts = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 6))) for _ in range(40)]
    assert len({len(t) for t in texts}) == 5  # 2..6 letters: one 0-padded batch, five length groups

    result = subprocess.run([_tool("node"), "-e", NODE_GENERATE, str(NODE_DIR), str(bundle), json.dumps(texts)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    got = json.loads(result.stdout)
    assert sorted(got) == sorted(model.modes)
    for mode in model.modes:
        want = model.generate_text(texts, mode=mode)
        differ = [(t, w, g) for t, w, g in zip(texts, want, got[mode]) if w != g]
        assert len(got[mode]) == len(texts) and not differ, f"mode {mode}: {len(differ)} rows differ, e.g. {differ[:5]}"
    # the fused loop is the step graph looped: in fp32 it decodes as step mode, row for row
    assert got["fused"] == got["step"]
    assert sum(out == text[::-1] for out, text in zip(got["step"], texts)) >= 5  # the tiny model learnt something
    assert len(set(got["step"])) >= 20 and np.mean([len(o) for o in got["step"]]) > 1
