"""Round trips through a real store: Arrow when faithful, signed pickle otherwise."""

from __future__ import annotations

import enum
import math

import numpy as np
import pyarrow as pa
import pytest


class Point:
    """An arbitrary user class: Arrow cannot hold it, so it must be pickled."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and (other.x, other.y) == (self.x, self.y)


class Flag(enum.IntEnum):
    """An ``int`` subclass: Arrow would hand back plain ints, so it is pickled."""

    OFF = 0
    ON = 1


def same(a, b) -> bool:
    """Equal values AND equal types, recursively (numpy arrays by dtype and content)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


ARROW_CASES = {
    "ints": [1, -2, 2**62, None, 0],
    "floats": [1.5, float("inf"), float("nan"), None],
    "strings": ["a", "", "é✓", None],
    "bytes": [b"x", b"", b"\x00\xff", None],
    "bools": [True, False, None],
    "nones": [None, None],
    "empty": [],
    "lists": [[1, 2], [], None, [3]],
    "nested-lists": [[[1.0], []], [[2.5, None]]],
    "tuples-kv": [("a", 1), ("b", 2), ("c", None)],
    "tuples-varlen": [(1, 2, 3), (4,), ()],
    "tuple-nested": [((1, "x"), [b"y"])],
    "dicts-record": [{"name": "a", "age": 1}, {"name": "b", "age": None}],
    "dicts-varied-keys": [{"a": 1}, {"b": 2, "c": 3}, {}],
    "dicts-int-keys": [{1: "a", 2: "b"}, {}],
    "dicts-key-order": [{"a": 1, "b": 2}, {"b": 1, "a": 2}],
    "numpy-arrays": [np.arange(5), np.array([], dtype=np.int64), None, np.arange(3)],
    "numpy-float32": [np.array([1.5, 2.5], dtype=np.float32)],
    "numpy-bool-uint8": [{"m": np.array([True, False]), "u": np.array([1, 2], dtype=np.uint8)}],
    "numpy-scalars": [np.int32(5), np.int32(-7)],
    "numpy-float-scalars": [np.float64(0.5), np.float64(1.5)],
    "mixed-nesting": [{"k": (1, [np.array([1.0])]), "v": [{"x": b"1"}]}],
    "floats-no-null": [0.1, float("nan"), -0.0],
    "tuples-with-none-row": [("a", 1), None, ("b", 2)],
    "dicts-with-none-row": [{"a": 1}, None],
    "many-rows-several-batches": [(str(i), i, i / 2) for i in range(70_000)],
    "many-ints": list(range(200_000)),
    "ints-no-null-extremes": [-2**63, 0, 2**63 - 1],
    "bools-no-null": [True, False, True],
}

PICKLE_CASES = {
    "custom-class": [Point(1, 2), Point(3, 4)],
    "mixed-int-float": [1, 2.5],
    "int-and-bool": [1, True],
    "huge-int": [2**70],
    "int-beyond-int64-among-ints": [1, 2**63],
    "int-subclass": [Flag.ON, Flag.OFF],
    "2d-array": [np.zeros((2, 3))],
    "set": [{1, 2}],
    "lone-surrogate": ["\udcff"],
    "tuple-partition": (1, 2, 3),
    "lambda": [lambda x: x + 1],
}


def _roundtrip(store, records):
    part = store.write_part("job", "tset", 0, 0, records)
    assert store.commit("job", "tset", 0, [part], {})
    ck = store.latest("job", "tset")
    assert ck is not None
    return part, store.read_part(ck, 0)


@pytest.mark.parametrize("records", list(ARROW_CASES.values()), ids=list(ARROW_CASES))
def test_arrow_roundtrip_is_exact(store, records):
    part, back = _roundtrip(store, records)
    assert part.format == "arrow"
    assert part.path.endswith(".arrow")
    assert part.rows == len(records)
    assert same(records, back), (records, back)


@pytest.mark.parametrize("records", list(PICKLE_CASES.values()), ids=list(PICKLE_CASES))
def test_pickle_fallback_roundtrip(store, records):
    part, back = _roundtrip(store, records)
    assert part.format == "pickle"
    assert part.path.endswith(".pkl")
    if PICKLE_CASES["lambda"] is records:
        assert back[0](1) == 2
    else:
        assert same(records, back), (records, back)


@pytest.mark.parametrize("records", list(ARROW_CASES.values()), ids=list(ARROW_CASES))
def test_a_part_written_without_arrow_is_a_signed_pickle_read_back_exactly(store, records):
    """``arrow=False`` (task checkpoints): the pickle even for records Arrow
    holds exactly, and they come back the same."""
    part = store.write_part("job", "tset", 0, 0, records, arrow=False)
    assert part.format == "pickle" and part.path.endswith(".pkl")
    assert store.commit("job", "tset", 0, [part], {})
    assert same(records, store.read_part(store.latest("job", "tset"), 0))


@pytest.mark.parametrize("records, arrow_type", [
    ([3, -1, 2**40], pa.int64()), ([0.5, -0.0], pa.float64()), ([False, True], pa.bool_()),
    ([3, None], pa.int64()), ([0.5, None], pa.float64())], ids=str)
def test_flat_numeric_lists_are_one_plain_arrow_column(store, records, arrow_type):
    """A list of only ints, floats or bools (the numpy path when it has no None)
    is the column Arrow's own conversion makes, readable without the codec."""
    part = store.write_part("job", "tset", 0, 0, records)
    assert store.commit("job", "tset", 0, [part])
    table = store.read_part_table(store.latest("job", "tset"), 0)
    assert table.schema.field(0).type == arrow_type
    assert table.column(0).to_pylist() == pa.array(records, type=arrow_type).to_pylist()


def test_ndarray_partition_roundtrip_and_table(store):
    arr = np.arange(100_000, dtype=np.int64)
    part = store.write_part("job", "tset", 0, 0, arr)
    assert part.format == "arrow" and part.rows == 100_000
    assert store.commit("job", "tset", 0, [part])
    ck = store.latest("job", "tset")
    back = store.read_part(ck, 0)
    assert type(back) is np.ndarray and back.dtype == np.int64
    np.testing.assert_array_equal(back, arr)
    table = store.read_part_table(ck, 0)
    assert isinstance(table, pa.Table) and table.num_rows == 100_000
    np.testing.assert_array_equal(table.column(0).to_numpy(), arr)


def test_large_list_of_arrays_is_zero_copy_locally(backend):
    store = backend.open()
    arrays = [np.full(1 << 20, i, dtype=np.int64) for i in range(3)]  # 3 x 8 MB
    part = store.write_part("job", "tset", 0, 0, arrays)
    assert store.commit("job", "tset", 0, [part])
    back = store.read_part(store.latest("job", "tset"), 0)
    assert [a.dtype for a in back] == [np.dtype(np.int64)] * 3
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back))
    if backend.name == "local":
        assert not back[0].flags.writeable  # a view into the memory map


def test_read_part_table_refuses_pickles(store):
    part = store.write_part("job", "tset", 0, 0, [Point(1, 2)])
    assert store.commit("job", "tset", 0, [part])
    with pytest.raises(ValueError, match="not Arrow"):
        store.read_part_table(store.latest("job", "tset"), 0)


def test_sha256_checksums(backend):
    store = backend.open(checksum="sha256")
    part, back = _roundtrip(store, [1, 2, 3])
    assert part.checksum.startswith("sha256:")
    assert back == [1, 2, 3]
