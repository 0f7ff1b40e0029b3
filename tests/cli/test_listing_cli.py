"""`reverie list`: a table of every registry and every name in it, or of one registry."""

from __future__ import annotations


from reverie.cli.main import main
from reverie.registry import all_registries


def listed_rows(capsys) -> list[tuple[str, str]]:
    """(kind, name) of each row of the printed table."""
    rows = []
    for line in capsys.readouterr().out.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells != ["kind", "name"]:
            rows.append((cells[0], cells[1]))
    return rows


def test_every_registry_is_listed_with_all_its_names(capsys):
    assert main(["list"]) == 0
    rows = listed_rows(capsys)
    registries = all_registries()  # as filled by the modules the command imported
    assert rows == [(kind, name) for kind in sorted(registries) for name in registries[kind]]
    expected = [("agent", "dyna_q"), ("agent", "pets"), ("decoder", "pyav"), ("model", "mlp_policy"), ("model", "vjepa_ac"), ("planner", "cem")]
    assert set(expected) <= set(rows)  # models are lazy entries (name -> module)


def test_one_kind_lists_only_that_registry(capsys):
    assert main(["list", "decoder"]) == 0
    rows = listed_rows(capsys)
    assert rows and {kind for kind, _ in rows} == {"decoder"}
    assert [name for _, name in rows] == list(all_registries()["decoder"])


def test_an_unknown_kind_exits_2_naming_the_kinds(capsys):
    assert main(["list", "nonsense"]) == 2
    error = capsys.readouterr().err
    assert "no registry 'nonsense'" in error and "agent" in error and "planner" in error
