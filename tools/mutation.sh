#!/usr/bin/env bash
# Mutation testing of runtime/ against the TensorFlow-free tests (tests/runtime), with mutmut 3.
#
#     python -m pip install -e ".[test,mutation]" && bash tools/mutation.sh
#
# Extra arguments go to `mutmut run` (e.g. "seq2seq_edge.runtime.inputs*" for one module).
# mutmut 3 names modules after their paths under src/, so it runs in a staging folder outside the
# repository ($MUT_STAGE, default /tmp/seq2seq-edge-mutmut) holding src/seq2seq_edge/ (a copy of the
# repository root, which is the package) and tests/; the checkout itself is never modified.
# Copies keep file times, so a rerun after a small change only retests what changed.
# Prints mutmut's counts and writes the survivors to $MUT_STAGE/mutants/survivors.txt;
# the score is killed / (killed + survived). About 30 minutes with 2 workers on 2 cores.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STAGE=${MUT_STAGE:-/tmp/seq2seq-edge-mutmut}
PY=${PYTHON:-python}
# The property tests (hypothesis, thousands of cases) are left out: each surviving mutant would run
# them for ~20 s, and they only add kills, so the score measured without them is a lower bound.
TESTS=${MUT_TESTS:-tests/runtime --ignore=tests/runtime/test_properties.py}
mkdir -p "$STAGE/src/seq2seq_edge"
rm -rf "$STAGE/src/seq2seq_edge"/* "$STAGE/tests"
tar -C "$REPO" --exclude=.git --exclude=tests --exclude=build --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=.pytest_cache -cf - . | tar -C "$STAGE/src/seq2seq_edge" -xf -
tar -C "$REPO" --exclude=__pycache__ -cf - tests | tar -C "$STAGE" -xf -
selection=$(printf '"%s", ' $TESTS)
cat > "$STAGE/pyproject.toml" <<TOML
[tool.pytest.ini_options]
testpaths = ["tests"]
[tool.mutmut]
source_paths = ["src/"]
only_mutate = ["src/seq2seq_edge/runtime/*"]
do_not_mutate = ["src/seq2seq_edge/runtime/__init__.py"]
pytest_add_cli_args_test_selection = [${selection%, }]
TOML
cd "$STAGE"
"$PY" -m mutmut run --max-children "${MUT_JOBS:-2}" "$@"
"$PY" -m mutmut export-cicd-stats >/dev/null
cat mutants/mutmut-cicd-stats.json && echo
"$PY" -m mutmut results | grep ": survived$" > mutants/survivors.txt || true
echo "survivors: $STAGE/mutants/survivors.txt ($(wc -l < mutants/survivors.txt))"
