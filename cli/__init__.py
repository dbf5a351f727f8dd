"""seq2seq_edge.cli: the `seq2seq-edge` command - argument parsing and printing over the rooms below.

parser.py holds the flags, commands.py ``main`` and the thin handlers, run.py the `run` command; the
library code they call lives in the rooms (export.evaluate, bench, serve, scale). No room imports it.
"""

from .commands import main

__all__ = ["main"]
