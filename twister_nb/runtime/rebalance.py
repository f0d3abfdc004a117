"""Which workers move to the nodes that joined the cluster while a job ran.

A job's workers are spread over the nodes when they start (``WorkerSpread``).
When a node is lost, its workers restart on the nodes that remain, two or more
to a node; when a node joins later, nothing in Ray moves them back. So at the
start of each action the scheduler asks :func:`plan_moves` which workers to
move: one worker to each node that has none, taken from the most crowded node
(the one holding the fewest cached partitions first, so the least data is
copied), never leaving a node empty. The scheduler then moves each: the
worker's cached partitions are copied to a new worker on the new node, and the
old one ends (``Scheduler.use_new_nodes``).

Plain Python (no Ray), so the decision is tested without a cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Move:
    """Worker ``worker`` goes from node ``source`` to node ``target``."""

    worker: int
    source: str
    target: str


def plan_moves(worker_nodes: Sequence[str], alive_nodes: Sequence[str],
               held: Mapping[int, int]) -> list[Move]:
    """The moves that put a worker on every alive node that has none.

    Parameters
    ----------
    worker_nodes : sequence of str
        The node of each worker, by worker index.
    alive_nodes : sequence of str
        The nodes of the cluster that are alive now.
    held : mapping
        Cached partitions held per worker index (missing: none).

    >>> plan_moves(["a", "a", "b"], ["a", "b", "c"], {0: 2, 1: 1})
    [Move(worker=1, source='a', target='c')]
    >>> plan_moves(["a", "b"], ["a", "b", "c"], {})
    []
    """
    crowd = Counter(worker_nodes)
    moves: list[Move] = []
    moved: set[int] = set()
    for target in (n for n in alive_nodes if n not in crowd):
        source, count = crowd.most_common(1)[0] if crowd else ("", 0)
        if count < 2:
            break
        candidates = [w for w, node in enumerate(worker_nodes)
                      if node == source and w not in moved]
        worker = min(candidates, key=lambda w: (held.get(w, 0), w))
        moves.append(Move(worker=worker, source=source, target=target))
        moved.add(worker)
        crowd[source] -= 1
        crowd[target] = 1
    return moves
