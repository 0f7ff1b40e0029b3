"""`reverie record ENV --episodes N --out DIR`: flags become the recording settings with their
defaults, the summary line, a real short recording, and argparse refusing missing or bad flags.
Recorded frames, actions, policies and resume are in `tests/pipelines/test_record.py`."""

from __future__ import annotations


import pytest

from reverie.cli import record
from reverie.cli.main import main
from reverie.shards.folder_lock import LOCK_NAME
from reverie.shards.manifest import read_manifest



@pytest.fixture
def recordings(monkeypatch) -> list:
    calls = []

    def fake_record(config):
        calls.append(config)
        return [{"clips": 2, "return": 10.0}, {"clips": 3, "return": 15.5}]

    monkeypatch.setattr(record, "run_record", fake_record)
    return calls


def test_defaults_and_the_summary_line(recordings, tmp_path, capsys):
    assert main(["record", "CartPole-v1", "--episodes", "2", "--out", str(tmp_path)]) == 0
    (config,) = recordings
    assert (config.env_id, config.episodes, config.out, config.policy, config.seed) == ("CartPole-v1", 2, tmp_path, "random", 0)
    assert (config.size, config.clip_frames, config.stride, config.clip_format, config.max_steps) == (96, 16, None, "mp4", None)
    assert config.square is False
    assert config.shard_max_count == 1000 and config.progress is False  # stderr is not a terminal here
    assert capsys.readouterr().err == f"2 episodes of CartPole-v1, 5 clips, mean return 12.75 -> {tmp_path / 'shards'}\n"


def test_flags_reach_the_settings(recordings, tmp_path):
    flags = ["--policy", "scripted", "--seed", "7", "--size", "32", "--square", "--clip-frames", "8", "--stride", "4", "--format", "npy"]
    assert main(["record", "Reacher-v5", "--episodes", "3", "--out", str(tmp_path), *flags, "--max-steps", "20", "--shard-size", "5"]) == 0
    (config,) = recordings
    assert (config.policy, config.seed, config.size, config.square, config.clip_frames, config.stride) == ("scripted", 7, 32, True, 8, 4)
    assert (config.clip_format, config.max_steps, config.shard_max_count) == ("npy", 20, 5)


def test_a_short_recording_writes_its_shards_and_manifest(tmp_path, capsys):
    arguments = ["record", "CartPole-v1", "--episodes", "2", "--out", str(tmp_path), "--size", "32", "--clip-frames", "4"]
    assert main([*arguments, "--format", "npy", "--max-steps", "8", "--shard-size", "3"]) == 0
    assert sorted(path.name for path in (tmp_path / "shards").glob("*.tar")) == ["000000.tar", "000001.tar"]  # 4 clips, 3 a shard
    assert len(read_manifest(tmp_path / "manifest.jsonl")) == 2
    assert capsys.readouterr().err.startswith("2 episodes of CartPole-v1, 4 clips, mean return 8.00 ->")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["CartPole-v1", "--out", "out"], "the following arguments are required: --episodes"),
        (["CartPole-v1", "--episodes", "1"], "the following arguments are required: --out"),
        (["CartPole-v1", "--episodes", "1", "--out", "out", "--format", "gif"], "invalid choice: 'gif'"),
        (["CartPole-v1", "--episodes", "many", "--out", "out"], "invalid int value: 'many'"),
    ],
)
def test_missing_or_bad_flags_exit_2(recordings, arguments, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["record", *arguments])
    assert exit.value.code == 2 and message in capsys.readouterr().err
    assert recordings == []


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["CartPole-v1", "--policy", "sideways"], "--policy 'sideways': use random, scripted, or a model folder"),
        (["Acrobot-v1", "--policy", "scripted"], "no scripted policy for Acrobot-v1"),
        (["NoSuchEnv-v0"], "NoSuchEnv"),
    ],
)
def test_a_bad_env_or_policy_exits_2_before_writing_anything(tmp_path, arguments, message, capsys):
    out = tmp_path / "out"
    assert main(["record", *arguments, "--episodes", "1", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_another_process_writes_exits_2_naming_it_and_the_holders_pid(tmp_path, capsys, hold_lock):
    out = tmp_path / "out"
    arguments = ["record", "CartPole-v1", "--episodes", "2", "--out", str(out), "--size", "32", "--clip-frames", "4", "--max-steps", "8"]
    assert main([*arguments, "--format", "npy"]) == 0
    first = hold_lock(out)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.rglob("*")) if p.is_file()}
    capsys.readouterr()
    assert main([*arguments[:3], "4", *arguments[4:], "--format", "npy"]) == 2
    assert capsys.readouterr().err == f"reverie record: {out} is being written by process {first.pid} (lock {out / LOCK_NAME}); wait for it to finish, or stop it\n"
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.rglob("*")) if p.is_file()} == before
