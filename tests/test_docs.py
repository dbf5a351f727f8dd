"""The documentation: the site builds with --strict, and the README stays a short front door whose links work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 210  # 200 until `serve` got its section (issue 32)
# [text](target) and ![alt](target); a target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(markdown: str) -> list[str]:
    """The link targets in ``markdown`` that point into the repository (no scheme, not a bare #anchor)."""
    without_code = re.sub(r"```.*?```", "", markdown, flags=re.S)
    targets = LINK.findall(without_code)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def test_mkdocs_build_strict(tmp_path):
    """`mkdocs build --strict` fails on a broken link, a missing page or an API name that does not resolve."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    for name in ("seq2seq_edge.runtime.load", "seq2seq_edge.runtime.Seq2SeqModel.generate",
                 "seq2seq_edge.export.export_keras", "seq2seq_edge.training.train", "seq2seq_edge.scale.score_file"):
        assert f'id="{name}"' in reference, f"the API reference lost {name}"


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move the detail into docs/")


def test_readme_relative_links_exist():
    links = relative_links(README.read_text(encoding="utf-8"))
    assert links, "README.md links into docs/"
    missing = [t for t in links if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_relative_links_finds_only_repository_paths():
    text = ("[a](docs/x.md) ![b](docs/demo.png) [c](https://example.org) [d](#top) [e](docs/y.md#part)\n"
            "```\n[f](not/a/link.md)\n```\n")
    assert relative_links(text) == ["docs/x.md", "docs/demo.png", "docs/y.md#part"]
