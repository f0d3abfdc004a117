"""Logical graph -> physical plan.

Chains of ``direct`` links (and ``union``) fuse into one per-partition program;
every other link (reduce, gather, partition, the keyed links, join, replicate)
cuts a stage: the upstream stage ends with the exchange's send side and the
downstream stage starts with its receive side. Nodes shared inside a stage are
computed once per partition; an exchange read twice is planned once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import cloudpickle

from twister_nb.plan.physical import (
    ExchangeInput,
    ExchangeSpec,
    MaterializedInput,
    Plan,
    Program,
    StagePlan,
    Step,
)
from twister_nb.tset import ops
from twister_nb.tset.graph import build_model, model_to_dict
from twister_nb.tset.identity import is_library, tset_id

ACTIONS = ("run", "collect", "partitions", "cache", "persist")


class _StageBuilder:
    """Collects the steps of one stage while the planner walks upstream."""

    def __init__(self, planner: "Planner", index: int) -> None:
        self.planner = planner
        self.index = index
        self.steps: list[Step] = []
        self.memo: dict[int, int] = {}
        self.exchange_inputs: list[ExchangeInput] = []
        self.materialized_inputs: list[MaterializedInput] = []
        self.parallelism = 1

    def add(self, op: ops.LogicalOp, kind: str, **fields: Any) -> int:
        self.steps.append(Step(kind=kind, tset_id=tset_id(op), label=op.label,
                               parallelism=op.parallelism, **fields))
        self.parallelism = max(self.parallelism, op.parallelism)
        return len(self.steps) - 1

    def materialized(self, op: ops.Materialized) -> int:
        entry = MaterializedInput(op.tset_id, op.parallelism, op.storage)
        if entry not in self.materialized_inputs:
            self.materialized_inputs.append(entry)
        return self.materialized_inputs.index(entry)

    def exchange(self, stage: int, spec: ExchangeSpec) -> int:
        self.exchange_inputs.append(ExchangeInput(stage, spec.partitioned))
        return len(self.exchange_inputs) - 1


class Planner:
    """Plans the graph upstream of an action's root into stages."""

    def __init__(self, pickler: Any = cloudpickle) -> None:
        self.pickler = pickler
        self.stages: list[StagePlan] = []
        self._exchange_stages: dict[tuple[int, int], int] = {}

    # Table from node type to the method that plans it; looked up with
    # isinstance in order, so subclasses come before their bases.
    _PLAN_FNS: list[tuple[type, str]] = [
        (ops.Source, "_plan_source_op"),
        (ops.Parallelize, "_plan_parallelize_op"),
        (ops.Materialized, "_plan_materialized_op"),
        (ops.Direct, "_plan_direct_op"),
        (ops.Join, "_plan_join_op"),
        (ops.AbstractExchange, "_plan_exchange_op"),
        (ops.ForEach, "_plan_transform_op"),
        (ops.Sink, "_plan_transform_op"),
        (ops.AbstractTransform, "_plan_transform_op"),
        (ops.Union, "_plan_union_op"),
    ]

    def plan(self, root: ops.LogicalOp, action: str) -> Plan:
        if action not in ACTIONS:
            raise ValueError(f"plan(): action {action!r} is not one of {ACTIONS}")
        if isinstance(root, ops.AbstractLink):
            raise ValueError(f"plan(): the root must be a TSet, not the link {root.kind!r}")
        self._stage(root, action, None)
        return Plan(stages=self.stages, action=action, root_id=tset_id(root), keyed=root.keyed,
                    graph=model_to_dict(build_model(root)))

    # ------------------------------------------------------------ stages

    def _stage(self, root: ops.LogicalOp, output: str, exchange: ExchangeSpec | None,
               feeds: str = "") -> int:
        builder = _StageBuilder(self, -1)
        out_step = self._emit(root, builder)
        program = Program(steps=builder.steps, output_step=out_step,
                          last_use=_last_uses(builder.steps, out_step), exchange=exchange)
        index = len(self.stages)
        if output in ("collect", "partitions"):
            num_outputs = 1
        elif output == "exchange":
            num_outputs = exchange.buckets  # type: ignore[union-attr]
        else:
            num_outputs = 0
        self.stages.append(StagePlan(
            index=index,
            label=root.label,
            tset_id=tset_id(root),
            parallelism=builder.parallelism,
            output=output,
            exchange_inputs=builder.exchange_inputs,
            materialized_inputs=builder.materialized_inputs,
            tsets=[(s.label, s.tset_id) for s in builder.steps],
            program=dumps_by_value(program, self.pickler),
            num_outputs=num_outputs,
            feeds=feeds,
            functions=_function_names(builder.steps, exchange),
        ))
        return index

    def _emit(self, op: ops.LogicalOp, builder: _StageBuilder) -> int:
        """The step that yields ``op``'s partition, planning it if needed."""
        key = id(op)
        if key not in builder.memo:
            builder.memo[key] = self._plan_fn(op)(op, builder)
        return builder.memo[key]

    def _plan_fn(self, op: ops.LogicalOp) -> Callable[[ops.LogicalOp, _StageBuilder], int]:
        for cls, name in self._PLAN_FNS:
            if isinstance(op, cls):
                return getattr(self, name)
        raise ValueError(f"plan(): no plan function for node {type(op).__name__!r}")

    # ------------------------------------------------------------ node kinds

    def _plan_source_op(self, op: ops.Source, b: _StageBuilder) -> int:
        return b.add(op, "source", payload=op.func)

    def _plan_parallelize_op(self, op: ops.Parallelize, b: _StageBuilder) -> int:
        return b.add(op, "parallelize", payload=op.partitions)

    def _plan_materialized_op(self, op: ops.Materialized, b: _StageBuilder) -> int:
        return b.add(op, "materialized", source=b.materialized(op))

    def _plan_direct_op(self, op: ops.Direct, b: _StageBuilder) -> int:
        return self._emit(op.inputs[0], b)

    def _plan_union_op(self, op: ops.Union, b: _StageBuilder) -> int:
        return b.add(op, "union", args=tuple(self._emit(i, b) for i in op.inputs))

    def _plan_transform_op(self, op: ops.AbstractTransform, b: _StageBuilder) -> int:
        arg = self._emit(op.inputs[0], b)
        sides = []
        for key, side in op.side_inputs:
            assert isinstance(side, ops.Materialized), f"side input {key!r} is {side!r}"
            sides.append((key, b.materialized(side)))
        return b.add(op, op.kind, args=(arg,), fn=op.fn, convention=op.convention,
                     sides=tuple(sides), payload=getattr(op, "batch_size", None))

    def _spec(self, op: ops.AbstractExchange, src: ops.LogicalOp) -> ExchangeSpec:
        return ExchangeSpec(
            kind=op.kind,
            src_parallelism=src.parallelism,
            dst_parallelism=op.parallelism,
            fn=getattr(op, "fn", None),
            pf=getattr(op, "pf", None),
            key_comparator=getattr(op, "key_comparator", None),
            join_type=getattr(op, "join_type", "inner"),
        )

    def _producer(self, op: ops.AbstractExchange, side: int) -> tuple[int, ExchangeSpec]:
        src = op.inputs[side]
        spec = self._spec(op, src)
        key = (id(op), side)
        if key not in self._exchange_stages:
            self._exchange_stages[key] = self._stage(src, "exchange", spec,
                                                     feeds=f"{tset_id(op)}:{side}")
        return self._exchange_stages[key], spec

    def _plan_exchange_op(self, op: ops.AbstractExchange, b: _StageBuilder) -> int:
        stage, spec = self._producer(op, 0)
        return b.add(op, "exchange", source=b.exchange(stage, spec), payload=spec)

    def _plan_join_op(self, op: ops.Join, b: _StageBuilder) -> int:
        left_stage, spec = self._producer(op, 0)
        right_stage, _ = self._producer(op, 1)
        left = b.exchange(left_stage, spec)
        right = b.exchange(right_stage, spec)
        return b.add(op, "join", payload=(spec, left, right))


def _function_names(steps: list[Step], exchange: ExchangeSpec | None) -> tuple[str, ...]:
    """The qualified names of a stage's user functions (sources by their class),
    for ``avoid.checkpoint`` and the policies; no code, only names."""
    names = []
    for value in [*(s.fn if s.fn is not None else s.payload for s in steps),
                  *((exchange.fn, exchange.pf) if exchange is not None else ())]:
        fn = value if callable(value) and hasattr(value, "__qualname__") else type(value)
        module = getattr(fn, "__module__", "") or ""
        if value is None or module.startswith("twister_nb") or module == "builtins":
            continue
        names.append(f"{module}.{fn.__qualname__}")
    return tuple(dict.fromkeys(names))


def _user_modules(value: Any, found: set[str], depth: int = 0) -> None:
    """Modules of the user's own code reachable from a program's functions."""
    if depth > 3 or value is None or isinstance(value, (int, float, str, bytes, bool)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _user_modules(item, found, depth + 1)
        return
    module = getattr(value, "__module__", None) or getattr(type(value), "__module__", None)
    if module and not is_library(module) and not module.startswith("twister_nb"):
        found.add(module)
    for attr in ("fn", "payload", "pf", "key_comparator"):
        if hasattr(value, attr) and not isinstance(value, type):
            _user_modules(getattr(value, attr), found, depth + 1)


def dumps_by_value(program: Program, pickler: Any = cloudpickle) -> bytes:
    """Pickle a program so workers can load it without the user's files: code
    from the user's own modules (a test file, a notebook helper module) travels
    by value, like ``__main__``; installed packages travel by reference.

    ``pickler`` is a cloudpickle module; the runtime passes Ray's copy, so a
    class sent by value comes back from the workers as the very same class.
    """
    modules: set[str] = set()
    for step in program.steps:
        _user_modules(step, modules)
    _user_modules(program.exchange, modules)
    return dumps_with_modules(program, modules, pickler)


def dumps_with_modules(value: Any, modules: set[str], pickler: Any = cloudpickle) -> bytes:
    """Pickle ``value`` with the code of ``modules`` (the user's own) by value,
    so a process without the user's files loads it (a program, a custom
    checkpoint policy sent to the JobMaster)."""
    registered = []
    for name in sorted(modules - {"__main__", "__mp_main__"}):
        module = sys.modules.get(name)
        if module is not None:
            try:
                pickler.register_pickle_by_value(module)
                registered.append(module)
            except ValueError:
                pass
    try:
        return pickler.dumps(value)
    finally:
        for module in registered:
            pickler.unregister_pickle_by_value(module)


def _last_uses(steps: list[Step], output_step: int) -> list[int]:
    last = list(range(len(steps)))
    for i, step in enumerate(steps):
        for a in step.args:
            last[a] = max(last[a], i)
    last[output_step] = len(steps)  # the output lives to the end
    return last


def plan(root: ops.LogicalOp, action: str, pickler: Any = cloudpickle) -> Plan:
    """Plan the graph upstream of ``root`` for ``action``, pickling each stage's
    program with ``pickler`` (a cloudpickle module)."""
    return Planner(pickler).plan(root, action)
