"""The tasks of a `reverie ingest --slurm` array (`--slice i --num-slices K`) and `reverie ingest
--merge` (`reverie.pipelines.slices`), run here for real with the commands taken from the script."""

import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from reverie.cli.main import main as reverie
from reverie.shards.inspect import summarize
from reverie.shards.manifest import read_manifest
from ingest_array_scripts import OUT_NAME, SLURM_FLAGS, dry_run, flat, manifest_paths, task_arguments


@pytest.fixture(scope="module")
def inputs(sample_videos, damaged_files) -> list[str]:
    return [str(path) for path in [*sample_videos, damaged_files["empty"], damaged_files["text"]]]


@pytest.fixture(scope="module")
def sliced(tmp_path_factory, inputs) -> tuple[Path, str]:
    """A two-slice run, each array task run with the command line its script gives it."""
    out = tmp_path_factory.mktemp("sliced") / OUT_NAME
    assert dry_run(out, inputs, "--slices", "2", *SLURM_FLAGS) == 0
    script = (out / "ingest-array.sbatch").read_text()
    for task in (0, 1):
        assert reverie(task_arguments(script, task)) == 0
    return out, script


def test_each_slice_writes_its_own_manifest_and_shards(sliced, inputs):
    out, _ = sliced
    assert sorted(p.name for p in (out / "manifests").iterdir()) == ["slice-0000.jsonl", "slice-0001.jsonl"]
    for task in (0, 1):
        lines = read_manifest(out / "manifests" / f"slice-{task:04d}.jsonl")
        assert [line["path"] for line in lines] == inputs[task::2]
        for line in lines:
            assert all(name.startswith(f"s{task:04d}-") for name in line["shards"])
            assert all((out / "shards" / name).is_file() for name in line["shards"])
    shard_names = sorted(p.name for p in (out / "shards").iterdir())
    assert {name[:6] for name in shard_names} == {"s0000-", "s0001-"}
    assert all(re.fullmatch(r"s000[01]-\d{6}\.tar", name) for name in shard_names)
    assert "s0000-000000.tar" in shard_names and "s0001-000000.tar" in shard_names
    assert not (out / ".spool").exists()


def test_merge_joins_the_slices_in_input_order(sliced, inputs, capsys):
    out, _ = sliced
    assert reverie(["ingest", "--merge", str(out)]) == 0
    lines = read_manifest(out / "manifest.jsonl")
    assert [line["path"] for line in lines] == inputs
    assert [line["status"] for line in lines] == ["ok"] * 4 + ["failed"] * 2
    clips_of = {}
    for shard in (out / "shards").glob("*.tar"):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    source = json.load(tar.extractfile(member))["source"]
                    clips_of[source] = clips_of.get(source, 0) + 1
    assert {line["path"]: line["clips"] for line in lines if line["clips"]} == clips_of
    assert flat(f"merged 6 manifest lines into {out / 'manifest.jsonl'}") in flat(capsys.readouterr().err)


def test_resubmitting_a_finished_slice_changes_nothing(sliced):
    out, script = sliced
    before = {p: p.read_bytes() for p in [*(out / "shards").iterdir(), *(out / "manifests").iterdir()]}
    assert reverie(task_arguments(script, 1)) == 0
    after = {p: p.read_bytes() for p in [*(out / "shards").iterdir(), *(out / "manifests").iterdir()]}
    assert after == before


@pytest.fixture
def one_slice_missing(sliced, tmp_path) -> Path:
    """The sliced run as it stands while array task 1 has not run yet."""
    out = tmp_path / OUT_NAME
    shutil.copytree(sliced[0], out)
    (out / "manifest.jsonl").unlink(missing_ok=True)
    (out / "manifests" / "slice-0001.jsonl").unlink()
    for shard in (out / "shards").glob("s0001-*.tar"):
        shard.unlink()
    return out


def test_merge_with_a_slice_missing_exits_1_and_counts_the_missing(one_slice_missing, inputs, capsys):
    out = one_slice_missing
    assert reverie(["ingest", "--merge", str(out)]) == 1
    assert manifest_paths(out / "manifest.jsonl") == inputs[0::2]
    assert "3 of 6 inputs have no manifest line yet" in " ".join(capsys.readouterr().err.split())


def test_merge_with_a_slice_missing_names_the_missing_inputs(one_slice_missing, inputs, capsys):
    capsys.readouterr()
    reverie(["ingest", "--merge", str(one_slice_missing)])
    report = flat(capsys.readouterr().err)
    assert all(flat(path) in report for path in inputs[1::2])


def test_inspect_reads_slice_manifests_before_the_merge(one_slice_missing, inputs):
    summary = summarize(one_slice_missing)
    assert summary["inputs"] == 3
    assert summary["status"] == {"ok": 2, "failed": 1}
    assert summary["clips"] == sum(line["clips"] for line in read_manifest(one_slice_missing / "manifests" / "slice-0000.jsonl"))


def test_merge_of_a_folder_not_made_by_slurm_exits_2_naming_ingest_json(tmp_path, capsys):
    assert reverie(["ingest", "--merge", str(tmp_path)]) == 2
    assert flat(str(tmp_path / "ingest.json")) in flat(capsys.readouterr().err)
