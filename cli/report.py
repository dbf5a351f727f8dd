"""`evaluate`'s metrics for a person: plain-text tables instead of JSON (which `--json` keeps).

The layout follows the shape of the metrics, not the task: top-level numbers are `name: value`
lines; a group of results per decode mode (or per rule, per strategy) becomes one table with a
row per member; whatever is left is a two-column table of dotted names.
"""

from __future__ import annotations

from typing import Any

__all__ = ["metrics_table"]


def metrics_table(metrics: dict) -> str:
    """The evaluate result as text: scalars, then one table per group of results."""
    lines = [f"{k}: {_value(v)}" for k, v in metrics.items() if not isinstance(v, dict)]
    groups = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    # Groups of one shape (g2p's greedy and beam rows) share a table, named by their keys.
    flat = {k: _flatten(v) for k, v in groups.items() if not _all_dicts(v)}
    shapes: dict[tuple, list[str]] = {}
    for name, row in flat.items():
        shapes.setdefault(tuple(row), []).append(name)
    shared = [names for names in shapes.values() if len(names) > 1]
    for names in shared:
        lines += ["", _table(["decoding"] + list(flat[names[0]]), [[n] + list(flat[n].values()) for n in names])]
    done = {n for names in shared for n in names}
    for name, group in groups.items():
        if name in done:
            continue
        if _all_dicts(group):  # one row per member: {mode: {metric: value}}
            rows = {member: _flatten(values) for member, values in group.items()}
            columns = list(dict.fromkeys(c for row in rows.values() for c in row))
            body = [[member] + [row.get(c, "") for c in columns] for member, row in rows.items()]
            lines += ["", _table([name] + columns, body)]
        else:
            lines += ["", _table([name, "value"], [[k, v] for k, v in flat[name].items()])]
    return "\n".join(lines).lstrip("\n") + "\n"


def _all_dicts(group: dict) -> bool:
    return bool(group) and all(isinstance(v, dict) for v in group.values())


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """{'best': {'recall': 1}} -> {'best.recall': 1}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "-"}[v]
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """Columns aligned (text left, numbers right) under a header and a rule."""
    cells = [header] + [[_value(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows if i < len(row))
               for i in range(len(header))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])
