"""Shared helpers: run the real `llaunch` CLI in a subprocess, in a temporary output dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


def llaunch(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None,
            **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "launcher", *args], cwd=cwd or ROOT, env=env, text=True,
        capture_output=True, timeout=timeout, **popen,
    )


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A fresh output dir; the data cache is shared between tests to keep them fast."""
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


# set in the quickstart run's environment: none may land in its run dir or output (test_quickstart)
SECRETS = {"HF_TOKEN": "hf_secret_5e1f", "WANDB_API_KEY": "wandb_secret_9a7c", "AWS_SECRET_ACCESS_KEY": "aws_secret_44d2"}


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory, shared_cache) -> tuple[Path, subprocess.CompletedProcess]:
    """The quickstart as the README runs it, once per session: its tests check it, others start from its export."""
    out = tmp_path_factory.mktemp("quickstart")
    result = llaunch("run", str(QUICKSTART), f"output.dir={out}", f"output.cache_dir={shared_cache}", env=SECRETS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [run] = run_dirs(out)
    return run, result


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
