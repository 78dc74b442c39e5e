"""Generated scripts under hostile values, and the job script's preemption logic, run for real by bash.

SLURM's commands are replaced by small fakes on PATH (srun, scontrol, module) that record what they
were given; the slurm tier (tests/slurm) runs the same scripts on a real cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from launcher.plan import make_plan
from launcher.recipe import load_recipe
from launcher.rundir import RunDir
from tests.conftest import QUICKSTART

pytestmark = pytest.mark.unit

EVIL = "it's $(touch PWNED) `touch PWNED` \"q\" #c ;x"
HOSTILE = {  # written as a YAML recipe: on the command line YAML would read "#c" as a comment
    "resources": {"launcher": "slurm", "nodes": 2, "procs_per_node": 1},
    "slurm": {
        "partition": EVIL, "account": f"acc {EVIL}", "modules": [f"cuda/12 {EVIL}"],
        "env": {"MY_SETTING": f"v {EVIL}"}, "extra_sbatch": [f"--comment={EVIL}"],
        "container": {"image": f"img#{EVIL}", "mounts": ["/a b:/a b", f"{EVIL}:/x"]},
    },
}

# srun: record argv (NUL-separated) and one variable of its environment, then act out a worker
# outcome given by $FAKE_OUTCOME: completed | interrupted-on-stop | failed | crash | hang | lost-node
# (node2's worker dies without a word; node1's fails on the lost peer and says so).
FAKE_SRUN = r"""#!/usr/bin/env bash
printf '%s\0' "$@" > "$FAKE_LOG/srun.argv"
printf '%s' "$MY_SETTING" > "$FAKE_LOG/srun.env"
run_dir="${@: -1}"
touch "$FAKE_LOG/srun.started"
case $FAKE_OUTCOME in
  completed) echo '{"status": "completed", "step": 5}' > "$run_dir/result.json" ;;
  interrupted-on-stop)
    until [[ -e $run_dir/STOP ]]; do sleep 0.05; done
    echo '{"status": "interrupted", "step": 3}' > "$run_dir/result.json" ;;
  failed) echo '{"status": "failed", "error": "x", "exit_code": 2}' > "$run_dir/result.json" ;;
  crash) exit 9 ;;
  hang)
    touch "$run_dir/logs/hang-step-7-rank-0.txt"
    echo '{"status": "failed", "step": 7, "error": "hang: step 7 ran 9 s on rank 0 (limit 3 s)", "exit_code": 3}' \
      > "$run_dir/result.json"
    exit 1 ;;
  lost-node)
    echo '0: error: rank 0: RuntimeError: Connection closed by peer' > "$run_dir/logs/slurm-42-restart-0.out"
    echo '{"status": "failed", "error": "rank 0: RuntimeError: Connection closed by peer", "exit_code": 1}' \
      > "$run_dir/result.json"
    printf 'srun: error: node2: task 1: Exited with exit code 1\nsrun: launch/slurm: _step_signal: Terminating StepId=42.0\n' >&2
    printf 'srun: error: node1: task 0: Exited with exit code 1\n' >&2
    exit 1 ;;
esac
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
if [[ $1 == show ]]; then echo node1; echo node2; else echo "$@" >> "$FAKE_LOG/scontrol.calls"; fi
"""
FAKE_SINFO = """#!/usr/bin/env bash
printf 'node1 mix\\nnode2 mix\\nnode3 idle\\n'
"""
FAKE_SBATCH = """#!/usr/bin/env bash
echo "$@" >> "$FAKE_LOG/sbatch.calls"; [[ -z ${SLURM_JOB_ID:-} ]] && echo 43
"""
FAKE_MODULE = """#!/usr/bin/env bash
printf '%s\\0' "$@" >> "$FAKE_LOG/module.argv"
"""


def sbatch_arguments(line: str) -> list[str]:
    """The arguments sbatch reads from one #SBATCH line (its _get_argument: blanks split, "..." and '...'
    group, a backslash escapes the next character, an unquoted # starts a comment)."""
    args, current, quote, escape, started = [], "", "", False, False
    for ch in line.removeprefix("#SBATCH"):
        if escape:
            current, escape = current + ch, False
        elif ch == "\\":
            escape = started = True
        elif quote:
            if ch == quote:
                quote = ""
            else:
                current += ch
        elif ch in "\"'":
            quote, started = ch, True
        elif ch == "#":
            break
        elif ch.isspace():
            if started or current:
                args.append(current)
            current, started = "", False
        else:
            current, started = current + ch, True
    return args + ([current] if current or started else [])


def job_dir(tmp_path: Path, sections: dict) -> tuple[Path, Path]:
    recipe = tmp_path / "hostile.yaml"
    recipe.write_text(yaml.safe_dump({"extends": str(QUICKSTART), **sections}))
    run_dir = tmp_path / f"runs {EVIL}" / "quickstart-20260101-000000"
    (run_dir / "logs").mkdir(parents=True)
    RunDir(run_dir).write_recipe(load_recipe(recipe))
    plan = make_plan(load_recipe(recipe), str(run_dir), python=sys.executable, cores=2)  # reads result.json
    script = run_dir / "job.sbatch"
    script.write_text(plan.files["job.sbatch"])
    return run_dir, script


def fake_env(tmp_path: Path, outcome: str, restart: int | None = None) -> dict[str, str]:
    bin_dir, log = tmp_path / "fakebin", tmp_path / "fakelog"
    bin_dir.mkdir(exist_ok=True)
    log.mkdir(exist_ok=True)
    fakes = (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL), ("module", FAKE_MODULE), ("sinfo", FAKE_SINFO),
             ("sbatch", FAKE_SBATCH))
    for name, text in fakes:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), "FAKE_OUTCOME": outcome,
           "SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_NUM_NODES": "2"}
    env.pop("SLURM_RESTART_COUNT", None)
    if restart is not None:
        env["SLURM_RESTART_COUNT"] = str(restart)
    return env


def test_hostile_values_reach_sbatch_and_the_shell_as_plain_data(tmp_path):
    run_dir, script = job_dir(tmp_path, HOSTILE)
    text = script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True)
    directives = {args[0].split("=", 1)[0]: args[0].split("=", 1)[1] if "=" in args[0] else ""
                  for line in text.splitlines() if line.startswith("#SBATCH") for args in [sbatch_arguments(line)]}
    assert all(len(sbatch_arguments(line)) == 1 for line in text.splitlines() if line.startswith("#SBATCH"))
    assert directives["--partition"] == EVIL and directives["--account"] == f"acc {EVIL}"
    assert directives["--comment"] == EVIL and directives["--chdir"] == str(run_dir)

    env = fake_env(tmp_path, "completed")
    done = subprocess.run(["bash", str(script)], cwd=run_dir, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    log = Path(env["FAKE_LOG"])
    argv = (log / "srun.argv").read_text().split("\0")[:-1]
    assert f"--container-image=img#{EVIL}" in argv
    assert f"--container-mounts=/a b:/a b,{EVIL}:/x" in argv
    assert argv[-1] == str(run_dir) and argv[argv.index("--rdzv-endpoint") + 1].startswith("node1:")
    assert (log / "srun.env").read_text() == f"v {EVIL}"
    assert (log / "module.argv").read_text().split("\0")[:-1] == ["load", f"cuda/12 {EVIL}"]


def test_hostile_paths_stay_inert_in_launch_scripts(tmp_path):
    run_dir = str(tmp_path / EVIL)
    for launcher in ("local", "torchrun", "deepspeed"):
        overrides = [f"resources.launcher={launcher}"]
        if launcher == "local":
            overrides += ["resources.procs_per_node=1", "~train.global_batch_size"]
        plan = make_plan(load_recipe(QUICKSTART, overrides), run_dir, python="python3", cores=2)
        script = plan.files["launch.sh"].replace("exec ", "printf '%s\\n' ")
        done = subprocess.run(["bash", "-c", script], text=True, capture_output=True, check=True, cwd=tmp_path)
        assert done.stdout.splitlines()[-1] == run_dir
    assert not list(tmp_path.rglob("PWNED"))


def run_job(tmp_path: Path, outcome: str, restart: int | None = None, signal_it: bool = False):
    run_dir, script = job_dir(tmp_path, {"resources": {"launcher": "slurm"}, "slurm": {"max_requeues": 2}})
    env = fake_env(tmp_path, outcome, restart)
    (run_dir / "STOP").touch()  # left over from an earlier start: the script removes it first
    (run_dir / "result.json").write_text('{"status": "completed", "step": 1}')  # stale, likewise
    batch_log = run_dir / "logs" / "slurm-42.out"  # where SLURM writes the batch shell's output
    proc = subprocess.Popen(["bash", str(script)], cwd=run_dir, env=env, stdout=batch_log.open("w"),
                            stderr=subprocess.STDOUT, text=True)
    started = Path(env["FAKE_LOG"]) / "srun.started"
    deadline = time.time() + 30
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    if signal_it:
        proc.send_signal(signal.SIGUSR2)  # what `scancel --signal=USR2 --batch` does
    proc.wait(timeout=60)
    calls = Path(env["FAKE_LOG"]) / "scontrol.calls"
    return proc.returncode, batch_log.read_text(), calls.read_text().splitlines() if calls.exists() else []


def restarts(tmp_path: Path) -> list[dict]:
    [run_dir] = [p.parent for p in tmp_path.glob("runs*/*/job.sbatch")]
    return [json.loads(line) for line in (run_dir / "restarts.jsonl").read_text().splitlines()]


def test_signal_checkpoints_then_requeues(tmp_path):
    code, out, calls = run_job(tmp_path, "interrupted-on-stop", signal_it=True)
    assert code == 0, out
    assert calls == ["requeue 42"]
    assert "preemption signal" in out and "preempted; requeueing (restart 1 of at most 2)" in out
    assert restarts(tmp_path) == [{"job": "42", "start": 0, "cause": "preempted"}]


def test_no_requeue_after_max_requeues(tmp_path):
    # the third start: the first two ended without a word of the script's (SLURM requeued the job itself)
    code, out, calls = run_job(tmp_path, "interrupted-on-stop", restart=2, signal_it=True)
    assert code == 1 and calls == [], out
    assert "preempted; stopped after 2 requeue(s)" in out and "llaunch resume" in out
    assert [row["cause"] for row in restarts(tmp_path)] == ["ended by SLURM", "ended by SLURM"]


def test_a_hang_requeues_naming_the_rank_that_wrote_no_stacks(tmp_path):
    code, out, calls = run_job(tmp_path, "hang")
    assert code == 0 and calls == ["requeue 42"], out
    assert "hang at step 7 on rank 1; requeueing (restart 1 of at most 2)" in out


def test_a_lost_node_is_excluded_from_a_new_job_of_the_same_script(tmp_path):
    code, out, calls = run_job(tmp_path, "lost-node")
    assert code == 0 and calls == [], out
    [run_dir] = [p.parent for p in tmp_path.glob("runs*/*/job.sbatch")]
    sbatch = (tmp_path / "fakelog" / "sbatch.calls").read_text()
    assert sbatch == f"--parsable --exclude=node2 {run_dir}/job.sbatch\n"  # run without the job's SLURM_* variables
    assert "node node2 lost; requeueing" in out and "submitted job 43 excluding node2" in out
    assert restarts(tmp_path) == [{"job": "42", "start": 0, "cause": "node node2 lost", "exclude": ["node2"],
                                   "next_job": "43"}]
    assert json.loads((run_dir / "slurm.json").read_text())["jobs"] == ["43"]


def test_a_finished_run_is_never_requeued(tmp_path):
    code, out, calls = run_job(tmp_path, "completed", signal_it=True)
    assert code == 0 and calls == [] and "run completed" in out


def test_a_failure_of_the_run_keeps_its_exit_code_and_is_not_requeued(tmp_path):
    code, out, calls = run_job(tmp_path, "failed")
    assert code == 2 and calls == [], out


def test_workers_dead_without_a_result_requeue(tmp_path):
    code, out, calls = run_job(tmp_path, "crash")
    assert code == 0 and calls == ["requeue 42"], out
    assert "worker exit code 9; requeueing" in out
