"""Render sbatch scripts from the templates in `slurm/` and hand them to `sbatch`.

Templates use `string.Template` placeholders (`$name`). Every value that comes from a user (names,
paths, overrides) is shell-quoted before it is put into a script, and must be one printable line:
sbatch reads a script line by line and stops reading `#SBATCH` lines at the first command, so a
newline in a directive value would start a command and silently drop every directive after it.
Such a value is a `SbatchScriptError` naming its option, raised before anything is written.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from string import Template

from reverie.shards.writer import write_text_atomically

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "slurm"


class SbatchScriptError(ValueError):
    """A value that cannot go into an sbatch script, or a script whose directives a value broke."""


def check_line(option: str, value: str) -> str:
    """`value` if it is one printable line (no newline, tab, control or other non-printable character)."""
    if not value.isprintable():
        raise SbatchScriptError(f"{option}: {value!r} is not one printable line, so it cannot go into an sbatch script")
    return value


def quote_word(option: str, word: str) -> str:
    """`word` shell-quoted, once it is checked to be one printable line."""
    return shlex.quote(check_line(option, word))


def _option_of(arguments: list[str], index: int) -> str:
    """What to call `arguments[index]` in an error: the key of `key=value`, or the flag it belongs to."""
    word = arguments[index]
    key, equals, _ = word.partition("=")
    if equals and key and " " not in key:
        return key
    if index > 0 and arguments[index - 1].startswith("-"):
        return arguments[index - 1]
    return f"word {index} of the command"


def quote_command(arguments: list[str]) -> str:
    """A command line: each word checked to be one printable line, then shell-quoted."""
    return " ".join(quote_word(_option_of(arguments, index), word) for index, word in enumerate(arguments))


def sbatch_directives(**options: object) -> str:
    """`#SBATCH --key=value` lines for the options that are set (underscores become dashes)."""
    lines = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        lines.append(f"#SBATCH {flag}" if value is True else f"#SBATCH {flag}={quote_word(flag, str(value))}")
    return "\n".join(lines)


def check_script(script: str, name: str) -> str:
    """`script` if every line is printable and every `#SBATCH` line comes before the first command."""
    first_command = None
    for number, line in enumerate(script.split("\n"), start=1):
        if not line.isprintable():
            raise SbatchScriptError(f"{name} line {number}: {line!r} is not printable")
        if first_command is None and line.strip() and not line.lstrip().startswith("#"):
            first_command = (number, line)
        elif first_command is not None and line.startswith("#SBATCH"):
            raise SbatchScriptError(
                f"{name} line {number}: {line!r} comes after the first command (line {first_command[0]}: "
                f"{first_command[1]!r}), where sbatch no longer reads directives"
            )
    return script


def render(template: str, directives: dict[str, object], **values: object) -> str:
    """Fill `slurm/<template>` with `#SBATCH` lines for `directives` and with `values` (already
    quoted where they need to be, and each one printable line), then check the script as a whole."""
    texts = {key: check_line(f"${key}", str(value)) for key, value in values.items()}
    template_text = (TEMPLATE_DIR / template).read_text()
    script = Template(template_text).substitute(texts, directives=sbatch_directives(**directives))
    return check_script(script, template)


def reverie_executable() -> Path:
    """The `reverie` CLI of this environment: a job runs the same code that rendered it, not
    whatever `reverie` comes first on a node's PATH."""
    return Path(sys.executable).parent / "reverie"


def write_script(script: str, path: Path) -> Path:
    return write_text_atomically(path, script, mode=0o755)


def submit(script_path: Path) -> str:
    """`sbatch --parsable SCRIPT`; return the job id."""
    if shutil.which("sbatch") is None:
        raise RuntimeError("sbatch is not on PATH: run on a SLURM login node, or use --dry-run")
    result = subprocess.run(["sbatch", "--parsable", str(script_path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sbatch {script_path} failed: {result.stderr.strip()}")
    return result.stdout.strip().split(";")[0]
