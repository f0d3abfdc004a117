"""Configuration layers: packaged < home < environment < set() < call."""

from __future__ import annotations

from twister_nb import config


def test_layers(monkeypatch, tmp_path):
    monkeypatch.setenv("TWISTER_NB_HOME", str(tmp_path))
    assert config.get("twister2.checkpointing.enable") is True  # packaged default
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mine.yaml").write_text("job:\n  parallelism: 7\n")
    assert config.get("job.parallelism") == 7  # the user's file
    monkeypatch.setenv("TWISTER_NB_JOB__PARALLELISM", "9")
    assert config.get("job.parallelism") == 9  # the environment
    with config.set({"job.parallelism": 11}):
        assert config.get("job.parallelism") == 11
        assert config.get("job.parallelism", config={"job.parallelism": 13}) == 13
    assert config.get("job.parallelism") == 9
    assert config.override_with("job.parallelism", 3) == 3
    assert config.override_with("job.parallelism", None) == 9


def test_unknown_key_names_itself():
    import pytest

    with pytest.raises(KeyError, match="no.such.key"):
        config.get("no.such.key")
