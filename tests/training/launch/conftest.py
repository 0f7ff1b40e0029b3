"""A real one-node SLURM cluster for the submission tests: started by `slurm/local-cluster.sh` in a
temporary folder on free ports, stopped after the session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "slurm" / "local-cluster.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> dict[str, str]:
    """The environment (SLURM_CONF) in which sbatch, squeue and scontrol talk to the cluster."""
    state = tmp_path_factory.mktemp("slurm")
    env = os.environ | {
        "REVERIE_SLURM_DIR": str(state),
        "REVERIE_SLURMCTLD_PORT": str(free_port()),
        "REVERIE_SLURMD_PORT": str(free_port()),
    }
    started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600)
    if started.returncode and shutil.which("slurmctld") is None:
        pytest.skip(f"SLURM cannot be installed here (slurm/local-cluster.sh: {started.stderr.strip()[-300:]})")
    assert started.returncode == 0, f"the local SLURM cluster did not start:\n{started.stdout}\n{started.stderr}"
    yield env | {"SLURM_CONF": str(state / "slurm.conf")}
    subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
