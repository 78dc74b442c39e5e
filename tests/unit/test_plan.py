"""Plans are pure data; their rendering (argv, launch.sh, hostfile, job.sbatch) is compared with golden files.

Regenerate after an intended change with: UPDATE_GOLDEN=1 pytest tests/unit/test_plan.py
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from launcher.errors import UserError
from launcher.plan import make_plan
from launcher.recipe import load_recipe
from tests.conftest import QUICKSTART, ROOT

pytestmark = pytest.mark.unit

GOLDEN = ROOT / "tests" / "golden"
RUN_DIR = "/scratch/runs/quickstart-20260101-000000"
HOSTS = "resources.hosts=[" + ",".join(f"gpu{i:03d}" for i in range(1, 65)) + "]"
BIG = ["resources.nodes=64", "resources.procs_per_node=8", "resources.device=cuda", "parallel.strategy=zero3",
       "train.micro_batch_size=1", "train.global_batch_size=512"]

CASES = {
    "local": ["resources.launcher=local", "resources.procs_per_node=1", "~train.global_batch_size"],
    "torchrun_1x2": [],
    "torchrun_1x4_threads": ["resources.procs_per_node=4", "resources.threads_per_proc=3", "train.micro_batch_size=4"],
    "torchrun_2x1": ["resources.nodes=2", "resources.procs_per_node=1", "resources.rdzv_endpoint=gpu-001",
                     "resources.max_restarts=2"],
    "torchrun_elastic": ["resources.nodes=4", "resources.min_nodes=2", "resources.procs_per_node=1",
                         "~train.global_batch_size", "resources.rdzv_endpoint=gpu-001:29400"],
    "deepspeed_1x2": ["resources.launcher=deepspeed"],
    "deepspeed_64x8_zero3": ["resources.launcher=deepspeed", HOSTS, *BIG],
    "slurm_1x2": ["resources.launcher=slurm"],
    "slurm_2x1": ["resources.launcher=slurm", "resources.nodes=2", "resources.procs_per_node=1",
                  "slurm.profile=local"],
    "slurm_64x8_zero3": ["resources.launcher=slurm", "slurm.profile=example", *BIG],
    "slurm_container": ["resources.launcher=slurm", "resources.nodes=2", "resources.procs_per_node=4",
                        "resources.device=cuda", "slurm.gpus_per_node=4", "train.micro_batch_size=2",
                        "slurm.container.image=nvcr.io#nvidia/pytorch:24.05-py3",
                        "slurm.container.mounts=[/scratch:/scratch,/datasets:/datasets:ro]",
                        "slurm.container.workdir=/scratch", "slurm.partition=gpu", "slurm.time='2:00:00'"],
}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended, regenerate with UPDATE_GOLDEN=1"


def plan_for(overrides: list[str], run_dir: str = RUN_DIR):
    return make_plan(load_recipe(QUICKSTART, overrides), run_dir, python="python3", cores=2)


@pytest.mark.parametrize("name", CASES)
def test_plan_golden(name):
    plan = plan_for(CASES[name])
    check_golden(f"plan_{name}.json", plan.to_json())
    script = plan.files[plan.script_name]
    stem, ext = plan.script_name.split(".")
    check_golden(f"{stem}_{name}.{ext}", script)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert json.loads(plan.to_json())["files"] == plan.files


def test_torchrun_nodes_share_one_command_without_node_ranks():
    plan = plan_for(CASES["torchrun_2x1"])
    [command] = plan.commands
    assert command.node == "each of 2 nodes"
    argv = list(command.argv)
    assert "--node-rank" not in argv and "--node_rank" not in argv  # c10d assigns ranks
    assert argv[argv.index("--rdzv-id") + 1] == "quickstart-20260101-000000"
    assert argv[argv.index("--rdzv-endpoint") + 1].startswith("gpu-001:")


def test_ports_are_stable_per_run_and_differ_between_runs():
    def port(run_dir):
        argv = plan_for(CASES["torchrun_2x1"], run_dir).commands[0].argv
        return argv[argv.index("--rdzv-endpoint") + 1]

    assert port(RUN_DIR) == port(RUN_DIR)
    assert port(RUN_DIR) != port(RUN_DIR.replace("000000", "000001"))


@pytest.mark.parametrize(("overrides", "message"), [
    (["resources.nodes=2", "resources.procs_per_node=1"], "resources.rdzv_endpoint"),
    (["resources.launcher=deepspeed", "resources.nodes=2", "resources.procs_per_node=1", "resources.hosts=[a]"],
     "resources.hosts"),
    (["resources.launcher=deepspeed", "resources.max_restarts=1"], "torchrun options"),
    (["resources.launcher=slurm", "slurm.env.HF_TOKEN=hf_abc"], "secrets are never written"),
    (["resources.launcher=slurm", "slurm.env.SLURM_GPUS=gpu:2"], "srun reads SLURM_"),
    (["resources.launcher=slurm", "slurm.extra_sbatch=[exclusive]"], "not an sbatch option"),
    (["resources.launcher=slurm", "slurm.profile=nope"], "known profiles: example, local"),
    (["resources.launcher=slurm", "resources.device=cuda", "slurm.gpus_per_node=1"], "one worker per GPU"),
])
def test_plans_that_cannot_work_are_user_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        plan_for(overrides)


@pytest.mark.parametrize(("override", "message"), [
    ("slurm.time=4h", "expected a SLURM time"),
    ("slurm.time=2:00:00", "quote it"),  # YAML 1.1 reads an unquoted h:mm:ss as a number of seconds
    ("slurm.mem=lots", "expected a size"),
    ("resources.rdzv_endpoint=a b:1", "expected host or host:port"),
    ("resources.min_nodes=3", "more than resources.nodes"),
    ("slurm.partiton=gpu", "did you mean 'partition'"),
])
def test_bad_launch_values_are_rejected_when_loading(override, message):
    with pytest.raises(UserError, match=message):
        load_recipe(QUICKSTART, [override])


def test_recipe_values_win_over_the_profile_and_env_merges():
    plan = plan_for(["resources.launcher=slurm", "slurm.profile=example", "slurm.partition=debug",
                     "slurm.env.NCCL_DEBUG=INFO", "slurm.env.EXTRA=1", "slurm.modules=[gcc]"])
    script = plan.files["job.sbatch"]
    assert "#SBATCH --partition=debug" in script and "#SBATCH --account=my-lab" in script
    assert "export NCCL_DEBUG=INFO" in script and "export NCCL_ASYNC_ERROR_HANDLING=1" in script
    assert "export EXTRA=1" in script
    assert "module load gcc" in script and "cuda/12.4" not in script  # lists are replaced whole


def test_profile_errors_name_the_profile_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("partition: gpu\ngpus: 8\n")
    with pytest.raises(UserError, match=r"bad.yaml: gpus: unknown key; valid keys: partition"):
        plan_for(["resources.launcher=slurm", f"slurm.profile={bad}"])
    bad.write_text("time: forever\n")
    with pytest.raises(UserError, match=r"bad.yaml: slurm.time: expected a SLURM time"):
        plan_for(["resources.launcher=slurm", f"slurm.profile={bad}"])


def _summary_line(overrides: list[str], prefix: str, recipe_file=QUICKSTART) -> str:
    from launcher.plan.describe import describe

    recipe = load_recipe(recipe_file, overrides)
    text = describe(str(recipe_file), recipe, make_plan(recipe, RUN_DIR, python="python3", cores=2))
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return line


SFT = ROOT / "recipes" / "sft_lora.yaml"


@pytest.mark.parametrize(("recipe_file", "overrides", "per_step"), [
    (QUICKSTART, [], "16 sequences (2,048 tokens) per step"),  # clm blocks: exactly seq_len each
    (SFT, ["model.path=/models/base", "data.packing=false"],
     "16 sequences (up to 1,536 tokens, padded to the longest in each micro batch) per step"),
    (SFT, ["model.path=/models/base", "data.packing=true", "train.micro_batch_size=4", "train.global_batch_size=16"],
     "16 examples in 4 packed row(s) of 4 (up to 1,536 tokens, no padding) per step"),
])
def test_plan_says_what_a_step_holds(recipe_file, overrides, per_step):
    assert _summary_line(overrides, "batch", recipe_file).endswith(f"= {per_step}, " + (
        "200 steps" if recipe_file == QUICKSTART else "600 steps"))


def test_plan_shows_every_optimizer_setting():
    line = _summary_line(["train.betas=[0.9,0.999]", "train.weight_decay=0.1", "train.max_grad_norm=null",
                          "train.schedule=linear", "train.warmup_steps=7", "train.lr=2e-5"], "optimizer")
    assert line == ("optimizer AdamW lr 2e-05, betas (0.9, 0.999), eps 1e-08, weight decay 0.1 (none on biases and "
                    "norms), warmup 7 steps, linear schedule, no clipping")
    default = _summary_line([], "optimizer")  # the quickstart sets no betas: the default shows
    assert "betas (0.9, 0.95)," in default and "clip grad norm 1" in default
