"""The SLURM plan: one sbatch script with literal #SBATCH values; srun starts one torchrun per node.

What the script does at run time (and why):
- the head node is the first of `scontrol show hostnames "$SLURM_JOB_NODELIST"`, evaluated inside the
  job; torchrun's c10d rendezvous there assigns the ranks, so no node rank is ever expanded by us;
- SLURM sends USR2 to the batch shell `signal_lead` seconds before the time limit (or on
  `scancel --signal=USR2 --batch`); its trap creates RUN_DIR/STOP, which every worker sees at the next
  step boundary: all ranks save a checkpoint and exit cleanly. srun runs in the background so the trap
  runs at once (bash runs traps only between commands), and the script waits again until srun ends;
- then launcher.backends.restarts (run with the batch shell's python, llaunch's own in a container job) reads
  how the run ended and acts: completed -> exit 0; preempted, hung (exit code 3), a node lost or workers dead
  without a result -> the run restarts from its newest complete checkpoint (`scontrol requeue`, or a new job
  with `--exclude` of a lost node where the partition has spare nodes), at most `max_requeues` times, each
  restart with its cause in restarts.jsonl; a failure of the run itself (bad data, an exception) -> its exit code.
Every value from the recipe or profile is quoted for the shell, or for sbatch's own #SBATCH parser.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import PurePath

from launcher.errors import UserError
from launcher.plan.launch_plan import LaunchPlan, NodeCommand
from launcher.plan.local import WORKER, worker_env
from launcher.plan.torchrun import default_port, torchrun_args
from launcher.recipe.schema import Recipe, SlurmSpec
from launcher.rundir import RESULT_FILE, STOP_FILE

RESTARTS = ("-m", "launcher.backends.restarts")  # records each start's end and acts on it

SCRIPT = "job.sbatch"
PREPARE_SCRIPT = "prepare.sbatch"
PREPARE_JOB = "{prepare_job}"  # in the training job's sbatch argv: the array's job id, known once it is submitted
SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|CREDENTIAL|^AWS_", re.IGNORECASE)


class Raw(str):
    """Shell text that must reach the script unquoted (a variable expansion we wrote ourselves)."""


def _sh(parts: list[str]) -> str:
    return " ".join(p if isinstance(p, Raw) else shlex.quote(p) for p in parts)


def sbatch_value(value: str, key: str) -> str:
    """Quote a value for an #SBATCH line: sbatch splits at blanks, treats # as a comment, honours "..."
    with backslash escapes, and cannot continue a line."""
    if "\n" in value or "\r" in value:
        raise UserError(f"{key}: a line break cannot go into an #SBATCH line")
    if re.fullmatch(r"[A-Za-z0-9_.,:/=+@%-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(recipe: Recipe, run_dir: str, s: SlurmSpec) -> None:
    r = recipe.resources
    if "%" in run_dir or "\n" in run_dir:
        raise UserError(f"output.dir: {run_dir!r}: SLURM expands % in log file paths (and a line break cannot "
                        "go into a job script); choose a directory without them")
    if s.gpus_per_node and r.device != "cpu" and r.procs_per_node > s.gpus_per_node:
        raise UserError(f"resources.procs_per_node={r.procs_per_node} is more than slurm.gpus_per_node="
                        f"{s.gpus_per_node}: one worker per GPU (set both with --gpus-per-node)")
    for name in s.env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UserError(f"slurm.env.{name}: not a shell variable name")
        if name.startswith("SLURM_"):
            raise UserError(f"slurm.env.{name}: srun reads SLURM_* variables as its own options; pick another name")
        if SECRET.search(name):
            raise UserError(f"slurm.env.{name}: secrets are never written into job scripts; export {name} in the "
                            "shell you submit from (the job inherits it by name: --export=ALL)")
    for option in s.extra_sbatch or ():
        if not option.startswith("-"):
            raise UserError(f"slurm.extra_sbatch: {option!r} is not an sbatch option (e.g. --exclusive)")


def _directives(recipe: Recipe, name: str, run_dir: str, s: SlurmSpec) -> list[str]:
    r = recipe.resources
    nodes = f"{r.min_nodes}-{r.nodes}" if r.min_nodes is not None else str(r.nodes)
    options: list[tuple[str, object]] = [
        ("job-name", name), ("chdir", run_dir), ("output", "logs/slurm-%j.out"), ("open-mode", "append"),
        ("nodes", nodes), ("ntasks-per-node", 1), ("cpus-per-task", s.cpus_per_task),
        ("gpus-per-node", s.gpus_per_node or None), ("mem", s.mem), ("time", s.time),
        ("partition", s.partition), ("account", s.account), ("qos", s.qos), ("constraint", s.constraint),
        ("signal", f"B:USR2@{s.signal_lead}"), ("requeue", ""), ("export", "ALL"),
    ]
    lines = [f"#SBATCH --{key}" + (f"={sbatch_value(str(value), f'slurm.{key}')}" if value != "" else "")
             for key, value in options if value is not None]
    return lines + [f"#SBATCH {sbatch_value(option, 'slurm.extra_sbatch')}" for option in s.extra_sbatch or ()]


def _srun(recipe: Recipe, run_dir: str, s: SlurmSpec, python: str) -> str:
    srun = ["srun", Raw('--nodes="$SLURM_JOB_NUM_NODES"'), "--ntasks-per-node=1", f"--cpus-per-task={s.cpus_per_task}",
            "--kill-on-bad-exit=1", "--label", Raw('--output="$worker_log"')]
    if s.container:
        srun.append(f"--container-image={s.container.image}")
        if s.container.mounts:
            srun.append(f"--container-mounts={','.join(s.container.mounts)}")
        if s.container.workdir:
            srun.append(f"--container-workdir={s.container.workdir}")
    endpoint = Raw(f'"$head_node:{default_port(run_dir)}"')
    torchrun = [python, "-m", "torch.distributed.run", *torchrun_args(recipe, endpoint, Raw('"$run_name-$restart"'))]
    return _sh(srun) + " \\\n  " + _sh([*torchrun, *WORKER, run_dir]) + " &"


def plan_slurm(recipe: Recipe, run_dir: str, python: str, s: SlurmSpec) -> LaunchPlan:
    """`s` is the recipe's slurm section resolved over its cluster profile (profiles.resolve_slurm)."""
    _check(recipe, run_dir, s)
    s = s.model_copy(update={"cpus_per_task": s.cpus_per_task or recipe.resources.procs_per_node})
    name = PurePath(run_dir).name
    host_python = python if s.container else s.python or python  # the batch shell's, outside any container
    python = s.python or ("python3" if s.container else python)
    env = {**worker_env(recipe, s.cpus_per_task), **s.env}
    lines = [
        "#!/bin/bash",
        f"# Generated by llaunch for run {name}; `llaunch submit` submitted it (sbatch {SCRIPT}).",
        f"# Preemption: USR2 {s.signal_lead} s before the time limit (or scancel --signal=USR2 --batch JOBID)",
        "# -> the workers checkpoint and stop -> the job requeues itself and resumes; so does a hang or a lost node",
        f"# (at most {s.max_requeues} restarts in all; each one's cause in restarts.jsonl).",
        *_directives(recipe, name, run_dir, s),
        "set -uo pipefail",
        "",
        f"run_dir={shlex.quote(run_dir)}",
        f"run_name={shlex.quote(name)}",
        f"max_requeues={s.max_requeues}",
        "restart=${SLURM_RESTART_COUNT:-0}",
        'worker_log="logs/slurm-$SLURM_JOB_ID-restart-$restart.out"',
        'echo "llaunch: job $SLURM_JOB_ID start $restart on $SLURM_JOB_NODELIST at $(date \'+%F %T\');'
        ' worker output: $worker_log"',
        *(f"module load {shlex.quote(module)}" for module in s.modules or ()),
        *(f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())),
        f'{_sh([host_python, *RESTARTS])} begin "$run_dir" "$SLURM_JOB_ID" "$restart"',
        "",
        "stop_requested=0",
        "request_stop() {",
        "  stop_requested=1",
        '  echo "llaunch: preemption signal at $(date \'+%F %T\'): the workers checkpoint at the next step"',
        f'  touch "$run_dir/{STOP_FILE}"',
        "}",
        "trap request_stop USR2",
        f'rm -f "$run_dir/{STOP_FILE}" "$run_dir/{RESULT_FILE}"',
        "",
        'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        _srun(recipe, run_dir, s, python),
        "workers=$!",
        "while :; do  # a trap interrupts wait: wait again until srun has really ended",
        '  wait "$workers"; code=$?',
        '  kill -0 "$workers" 2>/dev/null || break',
        "done",
        "",
        f'{_sh([host_python, *RESTARTS])} end "$run_dir" "$SLURM_JOB_ID" "$restart" "$stop_requested" "$code" '
        '"$max_requeues"',
    ]
    command = NodeCommand("login node", ("sbatch", "--parsable", f"{run_dir}/{SCRIPT}"))
    r = recipe.resources
    return LaunchPlan("slurm", run_dir, r.nodes, r.procs_per_node, (command,), env, {SCRIPT: "\n".join(lines) + "\n"})


def with_prepare_array(plan: LaunchPlan, recipe: Recipe, python: str, s: SlurmSpec, tasks: int) -> LaunchPlan:
    """`plan` with the data prepared first by an array job of `tasks` CPU-only tasks (task I takes the shards
    whose index % tasks == I), and the training job submitted behind it: it starts only if every task
    succeeded, and SLURM cancels it if one failed (else it would stay PENDING for good)."""
    run_dir, name = plan.run_dir, PurePath(plan.run_dir).name
    host_python = python if s.container else s.python or python
    options: list[tuple[str, object]] = [
        ("job-name", f"{name}-prepare"), ("chdir", run_dir), ("output", "logs/prepare-%A-%a.out"),
        ("array", f"0-{tasks - 1}"), ("nodes", 1), ("ntasks", 1), ("cpus-per-task", s.cpus_per_task or 1),
        ("mem", s.mem), ("time", s.time), ("partition", s.partition), ("account", s.account), ("qos", s.qos),
        ("export", "ALL"),
    ]
    prepare = [host_python, "-m", "launcher", "prepare", f"{run_dir}/recipe.yaml"]
    lines = [
        "#!/bin/bash",
        f"# Generated by llaunch for run {name}: prepares its data as an array of {tasks} task(s) before the",
        f"# training job ({SCRIPT}, --dependency=afterok); a failed task keeps the training job from ever starting.",
        *(f"#SBATCH --{key}={sbatch_value(str(value), f'slurm.{key}')}" for key, value in options if value is not None),
        "set -uo pipefail",
        *(f"module load {shlex.quote(module)}" for module in s.modules or ()),
        'echo "llaunch: prepare task $SLURM_ARRAY_TASK_ID of ' + str(tasks) + ' (job $SLURM_ARRAY_JOB_ID) on '
        '$SLURMD_NODENAME at $(date \'+%F %T\')"',
        _sh([*prepare, "--task", Raw('"$SLURM_ARRAY_TASK_ID"'), "--tasks", str(tasks)]),
    ]
    train = plan.commands[0].argv
    commands = (NodeCommand("login node", ("sbatch", "--parsable", f"{run_dir}/{PREPARE_SCRIPT}")),
                NodeCommand("login node", (*train[:2], f"--dependency=afterok:{PREPARE_JOB}", "--kill-on-invalid-dep=yes",
                                           *train[2:])))
    return replace(plan, commands=commands, files={**plan.files, PREPARE_SCRIPT: "\n".join(lines) + "\n"})
