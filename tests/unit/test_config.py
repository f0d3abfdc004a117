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


def test_a_changed_file_is_read_again_and_a_caller_cannot_change_the_next_read(
        monkeypatch, tmp_path):
    """Files are parsed once while unchanged: an edit of the same size is still seen at
    once, and a list a caller changes in place is not what the next lookup gets."""
    import os

    monkeypatch.setenv("TWISTER_NB_HOME", str(tmp_path))
    (tmp_path / "conf").mkdir()
    mine = tmp_path / "conf" / "mine.yaml"
    mine.write_text("job:\n  parallelism: 7\nextra: [1, 2]\n")
    assert config.get("job.parallelism") == 7
    config.get("extra").append(3)
    assert config.get("extra") == [1, 2]
    stamp = mine.stat().st_mtime_ns
    mine.write_text("job:\n  parallelism: 8\nextra: [1, 2]\n")  # the same size
    os.utime(mine, ns=(stamp + 1_000_000, stamp + 1_000_000))  # a coarse clock's tick
    assert config.get("job.parallelism") == 8
    mine.unlink()
    assert config.get("job.parallelism") != 8


def test_unknown_key_names_itself():
    import pytest

    with pytest.raises(KeyError, match="no.such.key"):
        config.get("no.such.key")


def test_every_packaged_key_has_a_schema():
    """One schema for every key of conf/*.yaml: a new key without one fails here."""
    import yaml

    packaged = {}
    for path in sorted(config.PACKAGED_CONF.glob("*.yaml")):
        packaged.update(config.flatten(yaml.safe_load(path.read_text()) or {}))
    assert sorted(set(packaged) - set(config.SCHEMA)) == []
    assert config.problems(packaged) == [], "the defaults themselves are valid"


def test_bad_values_are_refused_naming_the_key():
    """The trial's values: retention abc, -1 and 0, parallelism=True, a typo."""
    import pytest

    for value in ("abc", -1, 0):
        (line,) = config.problems({"twister2.checkpointing.retention": value})
        assert line.startswith(f"twister2.checkpointing.retention: {value!r} must be")
    assert config.problems({"job.parallelism": True}) == [
        "job.parallelism: True must be int, not bool"]
    assert config.problems({"twister2.checkpointing.retention": 3}) == []
    (typo,) = config.problems({"runtime.worker_cpu": 1})
    assert "did you mean 'runtime.worker_cpus'" in typo
    assert config.problems({"someone.elses.key": 1}) == [], "only our prefixes are checked"
    with pytest.raises(config.ConfigError, match="twister2.checkpointing.retention: 'abc'"):
        config.validate({"twister2.checkpointing.retention": "abc"})
    with pytest.raises(ValueError):  # a ConfigError is a ValueError too
        config.validate({"ray.num_cpus": 0})


def test_a_job_with_a_wrong_value_does_not_start(capsys):
    """Checked when a job starts, before its banner and before any cluster."""
    import pytest

    from twister_nb import TSetEnvironment
    from twister_nb.errors import ConfigError

    with pytest.raises(ConfigError, match="job.parallelism: True must be int, not bool"):
        TSetEnvironment(config={"job.parallelism": True})
    assert "Job ID" not in capsys.readouterr().out


def test_config_check_command(monkeypatch):
    from click.testing import CliRunner

    from twister_nb.cli import main

    good = CliRunner().invoke(main, ["config", "check"])
    assert good.exit_code == 0 and "configuration OK" in good.output
    monkeypatch.setenv("TWISTER_NB_TWISTER2__CHECKPOINTING__RETENTION", "abc")
    bad = CliRunner().invoke(main, ["config", "check"])
    assert bad.exit_code == 1
    assert "twister2.checkpointing.retention: 'abc' must be int, not str" in bad.output
