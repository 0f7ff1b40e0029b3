"""Render sbatch scripts from the templates in `slurm/` and hand them to `sbatch`.

Templates use `string.Template` placeholders (`$name`). Every value that comes from a user (names,
paths, overrides) is shell-quoted before it is put into a script.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from string import Template

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "slurm"


def sbatch_directives(**options: object) -> str:
    """`#SBATCH --key=value` lines for the options that are set (underscores become dashes)."""
    lines = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        lines.append(f"#SBATCH {flag}" if value is True else f"#SBATCH {flag}={shlex.quote(str(value))}")
    return "\n".join(lines)


def render(template: str, **values: object) -> str:
    """Fill `slurm/<template>` with `values` (already quoted where they need to be)."""
    text = (TEMPLATE_DIR / template).read_text()
    return Template(text).substitute({key: str(value) for key, value in values.items()})


def write_script(script: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(script)
    partial.chmod(0o755)
    os.replace(partial, path)
    return path


def submit(script_path: Path) -> str:
    """`sbatch --parsable SCRIPT`; return the job id."""
    if shutil.which("sbatch") is None:
        raise RuntimeError("sbatch is not on PATH: run on a SLURM login node, or use --dry-run")
    result = subprocess.run(["sbatch", "--parsable", str(script_path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sbatch {script_path} failed: {result.stderr.strip()}")
    return result.stdout.strip().split(";")[0]


def quote_command(arguments: list[str]) -> str:
    return " ".join(shlex.quote(argument) for argument in arguments)
