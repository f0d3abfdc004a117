"""Faults caused for real: a worker killed mid-persist, parts left without a
manifest, corrupted and tampered checkpoints. Nothing partial or tampered is
ever read back, and every result is exact."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from twister_nb import TSetEnvironment
from twister_nb.errors import JobFailedError
from twister_nb.testing import IntSource

N, PAR = 2000, 4
EXPECTED = [(i * 5) + 2 for _ in range(PAR) for i in range(N)]


def pipeline(env: TSetEnvironment, count_file: Path, crash_flag: Path | None = None):
    """src -> mul (persisted) -> add (persisted); calls logged to ``count_file``;
    ``crash_flag`` holding k makes partition k's ``add`` kill its worker once."""
    counts, flag = str(count_file), str(crash_flag) if crash_flag else None

    def mul(itr, collector, ctx):
        with open(counts, "a") as f:
            f.write(f"mul {ctx.index}\n")
        for i in itr:
            collector.collect(i * 5)

    def add(itr, collector, ctx):
        with open(counts, "a") as f:
            f.write(f"add {ctx.index}\n")
        if flag and os.path.exists(flag) and open(flag).read() == str(ctx.index):
            os.remove(flag)
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-persist
        for i in itr:
            collector.collect(i + 2)

    first = env.create_source(IntSource(N), PAR).compute(mul).set_name("times-five").persist()
    second = first.compute(add).set_name("plus-two").persist()
    return first, second


def calls(count_file: Path) -> list[str]:
    return sorted(count_file.read_text().splitlines()) if count_file.exists() else []


def open_env(job_store, job_id=None, extra=None):
    return TSetEnvironment(name="faults", resources=[{"instances": PAR}],
                           config={**job_store.config, **(extra or {})}, job_id=job_id)


@pytest.mark.slow
def test_a_worker_killed_mid_persist_is_restarted_and_its_task_runs_again(ray_cluster, job_store,
                                                                          tmp_path):
    count_file, flag = tmp_path / "calls.txt", tmp_path / "crash"
    flag.write_text("2")
    # A worker per partition: only the killed task runs again. (With fewer
    # workers than partitions, a task queued on the same worker whose reply had
    # not reached the JobMaster when the process died runs again too: Ray
    # retries it, as it should, and the count would depend on timing.)
    env = open_env(job_store, extra={"runtime.workers": PAR})
    try:
        _, second = pipeline(env, count_file, flag)  # no error: an eviction, not a failure
        assert not flag.exists(), "the crash happened"
        assert second.collect() == EXPECTED
        assert calls(count_file) == sorted([f"mul {p}" for p in range(PAR)]
                                           + [f"add {p}" for p in range(PAR)] + ["add 2"])
        store = job_store.open()
        assert all(store.latest(env.job_id, t) is not None for t in store.list_tsets(env.job_id))
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("crash_partition", [0, 3])
def test_worker_killed_before_the_manifest(ray_cluster, job_store, tmp_path, crash_partition):
    count_file, flag = tmp_path / "calls.txt", tmp_path / "crash"
    flag.write_text(str(crash_partition))
    # no retry of the lost worker's task: the action fails before plus-two's manifest
    env = open_env(job_store, extra={"runtime.max_task_retries": 0})
    store = job_store.open()
    try:
        with pytest.raises(JobFailedError, match="worker"):
            pipeline(env, count_file, flag)
        tsets = store.list_tsets(env.job_id)
        committed = {t for t in tsets if store.latest(env.job_id, t) is not None}
        assert len(committed) == 1, "times-five committed; plus-two must not be"
        uncommitted = set(tsets) - committed
        for t in uncommitted:  # parts of the killed attempt may exist, never a manifest
            assert store.versions(env.job_id, t) == []
    finally:
        env.close()
    assert not flag.exists(), "the crash happened"
    before = calls(count_file)

    # restart by job ID: times-five restored, plus-two recomputed, result exact
    env2 = open_env(job_store, env.job_id)
    try:
        _, second = pipeline(env2, count_file)
        assert second.collect() == EXPECTED
    finally:
        env2.close()
    new_calls = _difference(calls(count_file), before)
    assert all(c.startswith("add ") for c in new_calls), new_calls
    assert sorted(new_calls) == [f"add {i}" for i in range(PAR)]


def _difference(after: list[str], before: list[str]) -> list[str]:
    rest = list(after)
    for c in before:
        rest.remove(c)
    return rest


@pytest.mark.slow
def test_parts_without_a_manifest_are_never_read(ray_cluster, job_store, tmp_path):
    count_file = tmp_path / "calls.txt"
    env = open_env(job_store)
    store = job_store.open()
    try:
        first, second = pipeline(env, count_file)
        assert second.collect() == EXPECTED
        # a later version with wrong data but no manifest (a crashed writer)
        for t in store.list_tsets(env.job_id):
            v = store.next_version(env.job_id, t)
            for p in range(PAR):
                store.write_part(env.job_id, t, v, p, [-1, -2, -3])
    finally:
        env.close()
    env2 = open_env(job_store, env.job_id)
    try:
        before = calls(count_file)
        _, second = pipeline(env2, count_file)
        assert second.collect() == EXPECTED
        assert calls(count_file) == before, "committed checkpoints were restored"
    finally:
        env2.close()


def _rewrite(job_store, path: str, data: bytes) -> None:
    store = job_store.open()
    with store._fs.open_output_stream(path) as f:  # S3: overwrite the object in place
        f.write(data)


def _read(job_store, path: str) -> bytes:
    store = job_store.open()
    with store._fs.open_input_stream(path) as f:
        return f.read()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "flip_bit", "delete_manifest", "foreign_pickle",
                                    "flip_bit_verified_on_restore", "arrow_rechecksummed"])
def test_damaged_checkpoint_is_recomputed(ray_cluster, job_store, tmp_path, damage, capsys):
    """By default a restart checks sizes, and checksums as parts are read: a flipped
    bit is found by the read, and the TSet is recomputed from its graph and the
    action run again. With verify_on_restore the restart itself finds it."""
    verify = damage == "flip_bit_verified_on_restore"
    damage = "flip_bit" if verify else damage
    count_file = tmp_path / "calls.txt"
    env = open_env(job_store)
    store = job_store.open()
    try:
        if damage == "foreign_pickle":
            data = env.parallelize_list([object_value(i) for i in range(40)], PAR)
            persisted = data.persist()
            expected = [object_value(i) for i in range(40)]
            tset_id = persisted.id
        else:
            first, second = pipeline(env, count_file)
            tset_id = second.id
            expected = EXPECTED
        assert (persisted if damage == "foreign_pickle" else second).collect() == expected
    finally:
        env.close()

    cp = store.latest(env.job_id, tset_id)
    part = cp.parts[1]
    raw = _read(job_store, part.path)
    if damage == "truncate":
        _rewrite(job_store, part.path, raw[: len(raw) // 2])
    elif damage == "flip_bit":
        pos = len(raw) // 2
        _rewrite(job_store, part.path, raw[:pos] + bytes([raw[pos] ^ 0x10]) + raw[pos + 1:])
    elif damage == "delete_manifest":
        store._fs.delete_file(cp.manifest_path)
    elif damage == "arrow_rechecksummed":  # other values, the manifest entry made to match
        assert part.format == "arrow"
        forged = store.write_part(env.job_id, "forged", 0, 1, [x + 1000000 for x in EXPECTED[:N]])
        _rewrite(job_store, part.path, _read(job_store, forged.path))
        _patch_manifest(job_store, cp, part, forged)
    else:  # a valid pickle signed with another key, its manifest entry made to match
        assert part.format == "pickle"
        from twister_nb.storage import CheckpointStore

        other = CheckpointStore.from_uri(job_store.uri, signing_key=b"x" * 32,
                                         s3_options=job_store.s3 or None)
        forged = other.write_part(env.job_id, "forged", 0, 1, [object_value(-1)])
        forged_bytes = _read(job_store, forged.path)
        _rewrite(job_store, part.path, forged_bytes)
        # signed again with the home's key, so the pickle's own signature is what
        # refuses it (the second line of defence, tested past the first)
        _patch_manifest(job_store, cp, part, forged, resign=True)
    capsys.readouterr()

    before = calls(count_file)
    env2 = open_env(job_store, env.job_id,
                    extra={"twister2.checkpointing.verify_on_restore": True} if verify else None)
    try:
        if damage == "foreign_pickle":
            again = env2.parallelize_list([object_value(i) for i in range(40)], PAR).persist()
        else:
            _, again = pipeline(env2, count_file)
        assert again.collect() == expected
    finally:
        env2.close()
    out = capsys.readouterr().out
    if damage == "arrow_rechecksummed":
        assert "signature does not check" in out, out
        assert cp.manifest_path in out, "the message names the refused manifest"
    elif damage != "delete_manifest":
        assert ("invalid" in out or "skipping" in out or "corrupt" in out), out
        assert part.path.rsplit("/", 1)[-1] in out, "the message names the damaged part"
    assert "checkpointed" in out, "the damaged TSet was recomputed and written again"
    if damage == "flip_bit" and verify:  # found by the restart, before anything reads it
        assert "'plus-two' restored" not in out, out
    elif damage == "flip_bit":  # sizes match: restored, then found by the read
        assert out.index("corrupt") > out.index("'plus-two' restored"), out
    if damage != "foreign_pickle":
        new_calls = _difference(calls(count_file), before)
        assert sorted(new_calls) == [f"add {i}" for i in range(PAR)], new_calls


def _patch_manifest(job_store, cp, part, forged, resign: bool = False) -> None:
    """Make the manifest entry of ``part`` match ``forged``; with ``resign``, sign it
    again with the home's key (which an attacker of the store does not have)."""
    import json

    from twister_nb import config
    from twister_nb.storage import load_or_create_key
    from twister_nb.storage.manifest import manifest_signature

    raw = json.loads(_read(job_store, cp.manifest_path))
    for entry in raw["parts"]:
        if entry.get("part_index", entry.get("index")) == part.part_index:
            entry.update({"size": forged.size, "checksum": forged.checksum})
    if resign:
        raw["signature"] = manifest_signature(raw, load_or_create_key(config.home() / "signing.key"))
    _rewrite(job_store, cp.manifest_path, json.dumps(raw).encode())


def object_value(i):
    """Not Arrow-able (a Fraction): persisted as a signed pickle."""
    from fractions import Fraction

    return Fraction(i, 7)


@pytest.mark.slow
def test_damaged_checkpoint_without_its_graph_is_a_clear_error(ray_cluster, job_store, tmp_path):
    """A handle from env.tsets() has no graph to recompute from: a damaged part
    read through it is an error that says what to do, never a wrong value."""
    from twister_nb.errors import CheckpointLostError

    env = open_env(job_store)
    store = job_store.open()
    try:
        _, second = pipeline(env, tmp_path / "calls.txt")
        tset_id = second.id
    finally:
        env.close()
    part = store.latest(env.job_id, tset_id).parts[2]
    raw = _read(job_store, part.path)
    _rewrite(job_store, part.path, raw[:100] + bytes([raw[100] ^ 0x01]) + raw[101:])

    env2 = open_env(job_store, env.job_id)
    try:
        handle = env2.tsets()["plus-two"]
        with pytest.raises(CheckpointLostError, match="Persist it again") as info:
            handle.collect()
        assert info.value.tset_id == tset_id and part.path.rsplit("/", 1)[-1] in str(info.value)
        # the undamaged TSet still reads back exactly
        assert env2.tsets()["times-five"].collect() == [i * 5 for _ in range(PAR) for i in range(N)]
    finally:
        env2.close()


@pytest.mark.slow
def test_forgotten_or_deleted_checkpoint_is_found_or_recomputed(ray_cluster, job_store, tmp_path):
    """A JobMaster that forgot a persisted TSet (a release racing a new handle)
    finds it in the store again; one deleted from the store is recomputed from
    its graph. Either way the result is exact."""
    import ray

    count_file = tmp_path / "calls.txt"
    env = open_env(job_store)
    store = job_store.open()
    try:
        _, second = pipeline(env, count_file)
        forget = env._executor.master.release  # as a late release of an older handle would
        ray.get(forget.remote(second.id))  # waited for: the JobMaster runs calls concurrently
        assert second.collect() == EXPECTED
        before = calls(count_file)
        for version in store.versions(env.job_id, second.id):
            cp = store.checkpoint(env.job_id, second.id, version)
            store._fs.delete_file(cp.manifest_path)
        ray.get(forget.remote(second.id))
        assert second.collect() == EXPECTED
        assert sorted(_difference(calls(count_file), before)) == [f"add {i}" for i in range(PAR)]
    finally:
        env.close()
