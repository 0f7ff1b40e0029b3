from pathlib import Path

import pytest

from reverie.pipelines.inputs import expand_inputs, read_input_list

VISIBLE = ["a.mp4", "b.mkv", "clip[1].mp4", "sub/c.avi", "sub/deeper/d.mp4", "sub/deeper/e.webm"]
HIDDEN = [".hidden.mp4", ".cache/f.mp4", "sub/.git/g.mp4", "sub/deeper/.h.mp4"]


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "videos"
    for name in VISIBLE + HIDDEN:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def paths(root: Path, names: list[str]) -> list[str]:
    return [str(root / name) for name in names]


def test_folder_is_searched_recursively_without_hidden_entries_in_sorted_order(tree):
    assert expand_inputs([str(tree)]) == paths(tree, sorted(VISIBLE))


def test_a_hidden_folder_given_by_name_is_searched(tree):
    assert expand_inputs([str(tree / ".cache")]) == paths(tree, [".cache/f.mp4"])


def test_a_name_with_glob_characters_that_exists_is_a_file_not_a_pattern(tree):
    assert expand_inputs([str(tree / "clip[1].mp4")]) == paths(tree, ["clip[1].mp4"])


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("*.mp4", ["a.mp4", "clip[1].mp4"]),
        ("sub/*", ["sub/c.avi"]),
        ("**/*.mp4", ["a.mp4", "clip[1].mp4", "sub/deeper/d.mp4"]),
        ("sub/**", ["sub/c.avi", "sub/deeper/d.mp4", "sub/deeper/e.webm"]),
        ("?.mkv", ["b.mkv"]),
        ("*.mov", []),
    ],
)
def test_glob_patterns_match_files_only_sorted_and_skip_hidden(tree, pattern, expected):
    assert expand_inputs([f"{tree}/{pattern}"]) == paths(tree, expected)


def test_the_same_file_given_twice_is_kept_once(tree, monkeypatch):
    monkeypatch.chdir(tree)
    arguments = ["b.mkv", str(tree / "sub"), "./b.mkv", str(tree / "b.mkv"), "sub/c.avi", "*.mkv"]
    expected = paths(tree, ["b.mkv", "sub/c.avi", "sub/deeper/d.mp4", "sub/deeper/e.webm"])
    assert sorted(expand_inputs(arguments)) == expected


def test_the_same_file_through_dot_dot_is_kept_once(tree):
    assert expand_inputs([str(tree / "a.mp4"), str(tree / "sub" / ".." / "a.mp4")]) == paths(tree, ["a.mp4"])


def test_relative_inputs_become_absolute(tree, monkeypatch):
    monkeypatch.chdir(tree / "sub")
    assert expand_inputs(["c.avi", "deeper"]) == paths(tree, ["sub/c.avi", "sub/deeper/d.mp4", "sub/deeper/e.webm"])


def test_a_missing_file_is_kept_to_be_reported_failed(tree):
    missing = tree / "gone.mp4"
    assert expand_inputs([str(missing), str(tree / "a.mp4")]) == [str(missing), str(tree / "a.mp4")]


def test_input_list_skips_comments_and_blank_lines(tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text("# raw footage\n/data/a.mp4\n\n   \n  /data/b c.mp4  \n  # indented comment\n/data/c#1.mp4\n")
    assert read_input_list(listing) == ["/data/a.mp4", "/data/b c.mp4", "/data/c#1.mp4"]


def test_input_list_entries_expand_like_arguments(tree, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{tree / 'sub'}\n# {tree / 'a.mp4'}\n{tree}/*.mkv\n")
    assert expand_inputs(read_input_list(listing)) == paths(tree, ["sub/c.avi", "sub/deeper/d.mp4", "sub/deeper/e.webm", "b.mkv"])
