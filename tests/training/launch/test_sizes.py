import pytest

from reverie.cli.main import main as reverie
from reverie.training.launch.sizes import parse_bytes


@pytest.mark.parametrize(
    "text, expected",
    [
        ("512MB", 512 * 10**6),
        ("1GB", 10**9),
        ("2TB", 2 * 10**12),
        ("4KB", 4000),
        ("3.5GiB", int(3.5 * 2**30)),
        ("64KiB", 64 * 1024),
        ("1MiB", 2**20),
        ("1TiB", 2**40),
        ("1gib", 2**30),
        (" 2 mb ", 2 * 10**6),
        ("100B", 100),
        ("1024", 1024),
        (2048, 2048),
    ],
)
def test_sizes_with_and_without_units(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "lots", "1XB", "-1MB", "1 M B", "0x10"])
def test_what_is_not_a_size_is_refused_by_name(text):
    with pytest.raises(ValueError, match=r"not a size: .*\(try 512MB or 1GiB\)"):
        parse_bytes(text)


@pytest.mark.parametrize("text, expected", [("2.01KB", 2010), ("4.02KB", 4020), ("8.03KB", 8030)])
def test_decimal_sizes_are_exact(text, expected):
    assert parse_bytes(text) == expected


def test_cli_refuses_a_bad_shard_size_before_doing_anything(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        reverie(["ingest", str(tmp_path / "video.mp4"), "--out", str(tmp_path / "out"), "--shard-bytes", "lots"])
    assert exit_info.value.code == 2
    assert "--shard-bytes" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
