"""The data-preparation array job: its script (golden), the training job's dependency on it, and when submit uses it."""

from __future__ import annotations

import pytest

from launcher.backends.slurm import SlurmBackend, prepare_tasks
from launcher.plan.profiles import resolve_slurm
from launcher.plan.slurm import PREPARE_JOB, with_prepare_array
from launcher.recipe import load_recipe
from tests.conftest import QUICKSTART
from tests.unit.test_plan import BIG, RUN_DIR, check_golden, plan_for

pytestmark = pytest.mark.unit

CLUSTER = ["resources.launcher=slurm", "slurm.profile=example", *BIG]


def test_the_array_script_and_the_dependent_training_job():
    recipe = load_recipe(QUICKSTART, CLUSTER)
    plan = with_prepare_array(plan_for(CLUSTER), recipe, "python3", resolve_slurm(recipe.slurm), 64)
    check_golden("job_slurm_prepare_array.sbatch", plan.files["prepare.sbatch"])
    assert plan.files["job.sbatch"] == plan_for(CLUSTER).files["job.sbatch"]
    prepare, train = (command.argv for command in plan.commands)
    assert prepare == ("sbatch", "--parsable", f"{RUN_DIR}/prepare.sbatch")
    assert train == ("sbatch", "--parsable", f"--dependency=afterok:{PREPARE_JOB}", "--kill-on-invalid-dep=yes",
                     f"{RUN_DIR}/job.sbatch")
    assert "gpus" not in plan.files["prepare.sbatch"] and "--exclusive" not in plan.files["prepare.sbatch"]


def test_submit_uses_an_array_only_for_unprepared_data_at_most_one_task_per_shard(tmp_path):
    recipe = load_recipe(QUICKSTART, ["resources.launcher=slurm", f"output.dir={tmp_path}"])
    assert prepare_tasks(recipe) == 2  # train.txt and eval.txt: two shards, though slurm.prepare_tasks is 8
    assert prepare_tasks(load_recipe(QUICKSTART, ["resources.launcher=slurm", "slurm.prepare_tasks=0"])) == 0
    assert "prepare.sbatch" in SlurmBackend().dryrun(recipe, str(tmp_path / "run")).files
