"""A normal (non-editable) install works from the repository root, where a newcomer just ran it:
no folder there shadows the installed package, and every documented import resolves."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The checkout built and installed as a wheel would be (no dependencies) into a throwaway folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--quiet", "--target",
                    str(target), str(ROOT)], check=True, capture_output=True, text=True)
    return target


def _python(code: str, installed: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(installed), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_no_root_folder_carries_the_package_name():
    assert not (ROOT / "seq2seq_edge").exists()


def test_readme_example_runs_from_the_repository_root(installed):
    result = _python("import seq2seq_edge.runtime as r\nfrom seq2seq_edge.runtime import load\nprint(r.__file__)\n"
                     "print(load('tests/data/dates_tiny').generate_text(['14 juillet 2023']))", installed)
    assert result.returncode == 0, result.stderr
    where, output = result.stdout.splitlines()
    assert where == str(installed / "seq2seq_edge" / "runtime" / "__init__.py")  # the install, not the checkout
    assert output == "['2023-07-14']"


def test_every_documented_import_resolves_to_the_install(installed):
    code = """
import seq2seq_edge
from seq2seq_edge.runtime import load, DecodeOptions, Hypothesis, Seq2SeqModel, AutoencoderModel, BundleError
from seq2seq_edge.training import ModelConfig, TrainConfig, train
from seq2seq_edge.export import export_run, export_keras, export_autoencoder
from seq2seq_edge.cli import main
print(seq2seq_edge.__file__)
print(export_run.__module__, train.__module__, main.__module__)
"""
    result = _python(code, installed)
    assert result.returncode == 0, result.stderr
    where, modules = result.stdout.splitlines()[-2:]
    assert where == str(installed / "seq2seq_edge" / "__init__.py")
    assert modules == "seq2seq_edge.export.api seq2seq_edge.training.fit seq2seq_edge.cli.commands"


def test_module_entry_point(installed):
    env = dict(os.environ, PYTHONPATH=str(installed))
    result = subprocess.run([sys.executable, "-m", "seq2seq_edge", "--version"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "seq2seq-edge 0.1.0"
