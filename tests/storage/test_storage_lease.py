"""Job leases over put-if-absent: one live owner, epochs, expiry, takeover."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import time

import pytest
from storage_helpers import lease_racer

from twister_nb.storage import LeaseHeldError, LeaseLostError


def test_acquire_renew_release(store):
    lease = store.acquire_lease("job", "master-a", ttl_s=30)
    assert lease.epoch == 1 and lease.owner == "master-a" and lease.live()
    assert store.read_lease("job") == lease
    renewed = store.renew_lease(lease, ttl_s=60)
    assert renewed.epoch == 1 and renewed.expires_at > lease.expires_at
    assert store.read_lease("job").expires_at == renewed.expires_at
    assert store.release_lease(renewed) is True
    assert not store.read_lease("job").live()
    assert store.release_lease(renewed) is False
    nxt = store.acquire_lease("job", "master-b", ttl_s=30)  # no wait after a release
    assert nxt.epoch == 2
    with pytest.raises(LeaseLostError, match="no longer"):
        store.renew_lease(renewed)


def test_second_owner_is_refused_while_live(store):
    store.acquire_lease("job", "master-a", ttl_s=30)
    with pytest.raises(LeaseHeldError, match="'master-a'") as e:
        store.acquire_lease("job", "master-b", ttl_s=30)
    assert e.value.holder == "master-a" and e.value.epoch == 1


def test_expired_lease_is_taken_over_with_next_epoch(store):
    old = store.acquire_lease("job", "master-a", ttl_s=1.0)
    with pytest.raises(LeaseHeldError):
        store.acquire_lease("job", "master-b", ttl_s=30)
    time.sleep(max(0.0, old.expires_at - time.time()) + 0.1)
    new = store.acquire_lease("job", "master-b", ttl_s=30)
    assert new.epoch == old.epoch + 1
    with pytest.raises(LeaseLostError, match="expired"):
        store.renew_lease(old)
    assert store.release_lease(old) is False
    assert store.read_lease("job").owner == "master-b"


def test_same_owner_reacquires_and_fences_the_old_claim(store):
    first = store.acquire_lease("job", "master-a", ttl_s=30)
    second = store.acquire_lease("job", "master-a", ttl_s=30)  # e.g. a restarted master
    assert second.epoch == first.epoch + 1
    with pytest.raises(LeaseLostError, match="newer epoch"):
        store.renew_lease(first)
    store.renew_lease(second)


def test_bad_lease_arguments(store):
    with pytest.raises(ValueError, match="owner"):
        store.acquire_lease("job", "", ttl_s=1)
    with pytest.raises(ValueError, match="ttl_s"):
        store.acquire_lease("job", "a", ttl_s=0)


def test_lease_race_between_processes(backend):
    store = backend.open()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    blob = pickle.dumps(store)
    owners = ["master-0", "master-1"]
    procs = [ctx.Process(target=lease_racer, args=(blob, o, barrier, results)) for o in owners]
    for p in procs:
        p.start()
    try:
        outcome = {
            owner: (kind, detail)
            for owner, kind, detail in (results.get(timeout=90) for _ in procs)
        }
    finally:
        for p in procs:
            p.join(timeout=30)
    winners = [o for o, (kind, _) in outcome.items() if kind == "won"]
    assert len(winners) == 1, outcome
    loser = next(o for o in owners if o not in winners)
    assert outcome[loser] == ("held", winners[0])
    assert store.read_lease("lease-job").owner == winners[0]
    assert store.read_lease("lease-job").epoch == 1
