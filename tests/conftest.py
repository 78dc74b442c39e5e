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


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
