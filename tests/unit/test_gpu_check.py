"""bench/gpu_check.py without a GPU: it checks its own recipes with llaunch validate and plan, says so in one
line and exits 0, so CI keeps the GPU check's recipes valid (the measurements need a CUDA machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def test_gpu_check_without_cuda_validates_its_recipes_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}  # CPU mode even on a GPU machine
    result = subprocess.run([sys.executable, "bench/gpu_check.py"], cwd=ROOT, env=env, text=True,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "no CUDA device here: checked the 20 GPU cases' recipes with llaunch validate and plan (0 refused); "
        "run this on a GPU machine for the measurements"]
