"""Write bandwidth of CheckpointStore against raw write + fsync (a measurement, not a test).

Writes 800 MB of int64 in 4 parts of 200 MB to a local store, as a list holding one
numpy array per part and as a bare numpy array per part, and the same bytes with plain
``write`` + ``fsync``; then reopens the checkpoint (memory map, with and without
checksum verification). Not collected by pytest (the name does not start with test_).

Run: ``python tests/storage/bench_write.py [--dir DIR] [--mb 800] [--parts 4] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from twister_nb.storage import CheckpointStore
from twister_nb.storage.checksum import default_algorithm


def raw_write(folder: str, arrays: list[np.ndarray]) -> None:
    for i, a in enumerate(arrays):
        with open(os.path.join(folder, f"raw-{i}.bin"), "wb") as f:
            f.write(memoryview(a))
            f.flush()
            os.fsync(f.fileno())


def store_write(store: CheckpointStore, version: int, arrays, wrap: bool) -> None:
    parts = [
        store.write_part("bench", "int64", version, i, [a] if wrap else a)
        for i, a in enumerate(arrays)
    ]
    assert store.commit("bench", "int64", version, parts, {"bench": True})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    ap.add_argument("--mb", type=int, default=800)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="tnb-bench-", dir=args.dir)
    n = args.mb * 1_000_000 // 8 // args.parts
    arrays = [np.arange(i * n, (i + 1) * n, dtype=np.int64) for i in range(args.parts)]
    total = sum(a.nbytes for a in arrays)
    print(
        f"{total / 1e6:.0f} MB of int64 in {args.parts} parts, folder {root}, "
        f"checksum {default_algorithm()}"
    )
    store = CheckpointStore.from_uri(os.path.join(root, "store"), signing_key=b"b" * 32)
    version = 0
    modes = ["raw write+fsync", "store, [ndarray] per part", "store, ndarray per part"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for rep in range(args.repeat):
            order = modes[rep % 3 :] + modes[: rep % 3]  # rotate: no mode always goes first
            for mode in order:
                store.clear_job("bench")
                raw_dir = os.path.join(root, "raw")
                shutil.rmtree(raw_dir, ignore_errors=True)
                os.makedirs(raw_dir)
                os.sync()  # start each measurement with no dirty pages of the others
                time.sleep(0.5)
                t = time.perf_counter()
                if mode == modes[0]:
                    raw_write(raw_dir, arrays)
                else:
                    store_write(store, version, arrays, wrap=mode == modes[1])
                    version += 1
                times[mode].append(time.perf_counter() - t)
        best_raw = min(times[modes[0]])
        for mode in modes:
            ts = times[mode]
            print(
                f"{mode:28s} best {total / min(ts) / 1e6:6.0f} MB/s, median "
                f"{total / sorted(ts)[len(ts) // 2] / 1e6:6.0f} MB/s "
                f"(best {min(ts):.2f} s = {min(ts) / best_raw:.2f}x raw; runs "
                + ", ".join(f"{x:.2f}" for x in ts)
                + " s)"
            )

        if store.latest("bench", "int64") is None:
            store_write(store, version, arrays, wrap=True)
        t = time.perf_counter()
        ck = store.latest("bench", "int64")
        back = [store.read_part(ck, i, verify=False) for i in range(ck.num_parts)]
        dt_open = time.perf_counter() - t
        t = time.perf_counter()
        back = [store.read_part(ck, i) for i in range(ck.num_parts)]
        dt_verify = time.perf_counter() - t
        back = [b[0] if isinstance(b, list) else b for b in back]
        assert all(np.array_equal(a, b) for a, b in zip(arrays, back))
        print(
            f"reopen by memory map: latest + read_part x{ck.num_parts} {dt_open * 1e3:.1f} ms "
            f"without checksum, {dt_verify * 1e3:.0f} ms with checksum verification"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
