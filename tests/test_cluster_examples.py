"""The cluster recipes in examples/: a Slurm job array and a Kubernetes Job.

Neither Slurm nor Kubernetes runs here: the script runs with a stand-in ``stagetune``
on PATH that records its arguments, and the manifest is parsed as YAML; both command
lines must be ones the real CLI accepts, with the password read from the environment.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagetune.search._cli import _parser
from stagetune.storage import redact, storage_url

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SLURM = EXAMPLES / "slurm_array.sh"
KUBERNETES = EXAMPLES / "kubernetes_job.yaml"
PLACEHOLDER = "${STAGETUNE_DB_PASSWORD}"


def check_run_argv(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``stagetune <argv>`` is a run against PostgreSQL whose password comes from the env."""
    args = _parser().parse_args(argv)
    assert args.command == "run"
    assert args.storage.startswith("postgresql://") and PLACEHOLDER in args.storage
    monkeypatch.setenv("STAGETUNE_DB_PASSWORD", "s3cret")
    url = storage_url(args.storage)
    assert ":s3cret@" in url and "s3cret" not in redact(url)


def test_the_slurm_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(SLURM)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_slurm_script_starts_one_worker_per_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = [line for line in SLURM.read_text().splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --array=0-7" in header and "#SBATCH --gres=gpu:1" in header
    fake = tmp_path / "stagetune"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGV_FILE"\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "ARGV_FILE": str(tmp_path / "argv"),
        "STAGETUNE_DB_PASSWORD": "s3cret",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_CPUS_PER_TASK": "4",
    }
    done = subprocess.run(["bash", str(SLURM)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "stagetune worker 3" in done.stdout
    argv = (tmp_path / "argv").read_text().splitlines()
    assert "s3cret" not in " ".join(argv)  # not on the command line
    assert argv[argv.index("--threads") + 1] == "4"
    check_run_argv(argv, monkeypatch)


def test_the_slurm_script_refuses_to_start_without_the_password(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"]}
    done = subprocess.run(["bash", str(SLURM)], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "export STAGETUNE_DB_PASSWORD before sbatch" in done.stderr


def test_the_kubernetes_manifest_is_a_job_of_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    job: dict[str, Any] = yaml.safe_load(KUBERNETES.read_text())
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["name"]
    spec = job["spec"]
    assert spec["parallelism"] >= 2 and spec["completions"] == spec["parallelism"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] in ("OnFailure", "Never")  # what a Job allows
    (container,) = pod["containers"]
    assert container["name"] and container["image"]
    assert container["command"] == ["stagetune"]
    argv = [str(a) for a in container["args"]]
    assert "$(" not in " ".join(argv)  # Kubernetes would expand that itself
    check_run_argv(argv, monkeypatch)
    (password,) = [e for e in container["env"] if e["name"] == "STAGETUNE_DB_PASSWORD"]
    assert set(password["valueFrom"]["secretKeyRef"]) == {"name", "key"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
