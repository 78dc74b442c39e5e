"""Plans are pure data; their rendering (argv, launch.sh) is compared with golden files.

Regenerate after an intended change with: UPDATE_GOLDEN=1 pytest tests/unit/test_plan.py
"""

from __future__ import annotations

import os
import subprocess

import pytest

from launcher.plan import make_plan
from launcher.recipe import load_recipe
from tests.conftest import QUICKSTART, ROOT

pytestmark = pytest.mark.unit

GOLDEN = ROOT / "tests" / "golden"
RUN_DIR = "runs/quickstart-20260101-000000"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended, regenerate with UPDATE_GOLDEN=1"


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("local", ["resources.launcher=local", "resources.procs_per_node=1", "~train.global_batch_size"]),
        ("torchrun_1x2", []),
        ("torchrun_1x4_threads", ["resources.procs_per_node=4", "resources.threads_per_proc=3",
                                  "train.micro_batch_size=4"]),
    ],
)
def test_plan_golden(name, overrides):
    plan = make_plan(load_recipe(QUICKSTART, overrides), RUN_DIR, python="python3", cores=2)
    check_golden(f"plan_{name}.json", plan.to_json())
    check_golden(f"launch_{name}.sh", plan.script())
    subprocess.run(["bash", "-n"], input=plan.script(), text=True, check=True)


def test_paths_with_shell_characters_stay_inert():
    hostile = "runs/it's $(touch /tmp/pwned) `id` dir"
    plan = make_plan(load_recipe(QUICKSTART), hostile, python="python3", cores=2)
    result = subprocess.run(
        ["bash", "-c", plan.script().replace("exec ", "printf '%s\\n' ")], text=True, capture_output=True, check=True
    )
    assert result.stdout.splitlines()[-1] == hostile

