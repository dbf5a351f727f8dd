"""seq2seq_edge.cli: the room above the three - the `seq2seq-edge` command, quickstart, evaluation, the benchmark.

It may import every room; no room imports it.
"""

from .commands import main

__all__ = ["main"]
