"""Griffe extensions for the docs site (mkdocs.yml): lazily imported public names, doctest examples.

``seq2seq_edge.export`` and ``seq2seq_edge.training`` keep TensorFlow out of their package import by
resolving some public names in a module ``__getattr__`` (export: a ``_PUBLIC`` dict of name -> submodule;
training: ``from .fit import train`` inside ``__getattr__``). Static analysis cannot follow either, so
``::: seq2seq_edge.export.export_keras`` would be a missing reference. This extension reads both patterns
from the module's syntax tree and adds each name as an alias of its definition; nothing is imported.

The docstrings are plain prose (no Args:/Returns: sections) rendered as Markdown, where a ``>>>`` example
would read as a quotation; ``DoctestBlocks`` fences each example as a ``pycon`` code block instead.
"""

from __future__ import annotations

import ast
import re

import griffe


def _public_dict(node: ast.Module) -> dict[str, str]:
    """``_PUBLIC = {"name": "submodule", ...}`` at module level, as a dict."""
    for statement in node.body:
        if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_PUBLIC" for t in statement.targets):
            value = ast.literal_eval(statement.value)
            return {str(name): str(module) for name, module in value.items()}
    return {}


def _getattr_imports(node: ast.Module) -> dict[str, str]:
    """``from .module import name`` statements inside a module-level ``def __getattr__``."""
    found: dict[str, str] = {}
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef) and statement.name == "__getattr__":
            for inner in ast.walk(statement):
                if isinstance(inner, ast.ImportFrom) and inner.level == 1 and inner.module:
                    found.update({alias.asname or alias.name: f"{inner.module}.{alias.name}" for alias in inner.names})
    return found


class LazyExports(griffe.Extension):
    """Add the names a package resolves lazily as aliases (and exports) of that package."""

    def on_module_members(self, *, node: ast.AST | griffe.ObjectNode, mod: griffe.Module, **kwargs) -> None:
        if not isinstance(node, ast.Module):
            return
        targets = {name: f"{module}.{name}" for name, module in _public_dict(node).items()}
        targets.update(_getattr_imports(node))
        for name, target in targets.items():
            if name not in mod.members:
                mod.set_member(name, griffe.Alias(name, f"{mod.path}.{target}", parent=mod))
        if targets and not mod.exports:  # ``__all__ = sorted(_PUBLIC)`` is not a literal griffe can read
            mod.exports = sorted(targets)


# A doctest example: a run of lines starting with >>> or ..., then its output lines, up to a blank line.
_DOCTEST = re.compile(r"^(?P<indent>[ \t]*)>>> .*(?:\n(?P=indent)(?!\s*$).*)*", re.M)


def fence_doctests(text: str) -> str:
    """``text`` with every doctest example inside a fenced ``pycon`` block (already fenced ones left alone)."""
    if "```" in text:
        return text
    def fence(match: re.Match) -> str:
        indent = match.group("indent")
        return f"{indent}```pycon\n{match.group(0)}\n{indent}```"
    return _DOCTEST.sub(fence, text)


class DoctestBlocks(griffe.Extension):
    """Render ``>>>`` examples in docstrings as code, not as Markdown quotations."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and ">>> " in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
