"""status, ls, logs and cancel on run dirs of either backend (no scheduler needed), and the light commands' import
budget."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from launcher.cli import main
from launcher.recipe import load_recipe
from launcher.rundir import RunDir
from tests.conftest import QUICKSTART, ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def run(tmp_path) -> RunDir:
    """A run dir as a torchrun run leaves it: metrics, a complete and an incomplete checkpoint, rank logs."""
    run = RunDir.create(load_recipe(QUICKSTART, [f"output.dir={tmp_path}"]))
    rows = [{"kind": "train", "step": s, "loss": 5.0 - s / 10} for s in (10, 20, 30)]
    rows.insert(2, {"kind": "eval", "step": 20, "loss": 9.9})
    run.metrics.write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"kind": "tra')  # half written
    for step, complete in ((20, True), (30, False)):
        folder = run.checkpoints / f"step-{step:06d}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "COMPLETE").touch()
    (run.logs / "rank-0.log").write_text("step 10\nstep 20\n")
    (run.logs / "rank-1.log").write_text("rank one\n")
    return run


def test_status_reads_the_run_dir(run, capsys):
    assert main(["status", "--json", str(run.path)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["state"] == "UNFINISHED" and row["job"] is None and row["launcher"] == "torchrun"
    assert (row["step"], row["max_steps"], row["checkpoint"], row["restarts"]) == (30, 200, 20, 0)
    assert row["loss"] == pytest.approx(2.0)

    run.result_file.write_text('{"status": "interrupted", "step": 30}')
    assert main(["status", str(run.path)]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split() == ["RUN", "STATE", "JOB", "NODES", "STEP", "LOSS", "CHECKPOINT", "RESTARTS"]
    assert line.split()[1:] == ["INTERRUPTED", "-", "1x2", "30/200", "2.0000", "20", "0"]


def test_ls_lists_runs_under_a_directory(run, capsys):
    assert main(["ls", str(run.path.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and run.path.name in lines[1]
    assert main(["ls", str(run.path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_logs_print_every_rank_log_in_order(run, capsys):
    assert main(["logs", str(run.path)]) == 0
    assert capsys.readouterr().out == "==> logs/rank-0.log <==\nstep 10\nstep 20\n==> logs/rank-1.log <==\nrank one\n"


def test_cancel_of_a_local_run_asks_the_workers_to_stop(run, capsys):
    assert main(["cancel", str(run.path)]) == 0
    assert run.stop_file.exists() and "checkpoint at the next step" in capsys.readouterr().out


def test_last_train_row_skips_eval_and_half_written_lines(run):
    assert run.last_train_row()["step"] == 30


@pytest.fixture
def slurm_run(tmp_path) -> RunDir:
    """A run dir as `llaunch submit` leaves it, resubmitted once by `llaunch resume`; job 8 started twice."""
    run = RunDir.create(load_recipe(QUICKSTART, [f"output.dir={tmp_path}", "resources.launcher=slurm"]))
    run.jobs_file.write_text('{"jobs": ["7", "8"]}')
    (run.path / "restarts.jsonl").write_text('{"job": "8", "start": 0, "cause": "preempted"}\n')
    for name, text in (("slurm-7.out", "job 7\n"), ("slurm-7-restart-0.out", "7 worker\n"), ("slurm-8.out", "job 8\n"),
                       ("slurm-8-restart-1.out", "8 second\n"), ("slurm-8-restart-0.out", "8 first\n")):
        (run.logs / name).write_text(text)
    return run


def test_a_slurm_run_shows_its_newest_job_without_asking_the_scheduler(slurm_run, capsys):
    assert main(["ls", str(slurm_run.path.parent)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1:3] == ["SUBMITTED", "8"]
    slurm_run.result_file.write_text('{"status": "completed", "step": 200}')
    assert main(["ls", str(slurm_run.path.parent)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1:] == ["COMPLETED", "8", "1x2", "0/200", "-", "-", "1",
                                                                 "(preempted)"]


def test_logs_of_a_slurm_run_follow_its_jobs_and_starts(slurm_run, capsys):
    assert main(["logs", str(slurm_run.path)]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if not line.startswith("==>")] == [
        "job 7", "7 worker", "job 8", "8 first", "8 second"]


@pytest.mark.skipif(shutil.which("scancel") is not None, reason="a real scancel is here (the slurm tier tests it)")
def test_cancel_of_a_slurm_run_without_scancel_is_one_line(slurm_run, capsys):
    assert main(["cancel", str(slurm_run.path)]) == 2
    assert capsys.readouterr().err.startswith("error: could not cancel job 8: scancel not found")
    assert not slurm_run.stop_file.exists()


def test_commands_on_something_that_is_not_a_run_dir_are_user_errors(tmp_path, capsys):
    for command in ("status", "logs", "cancel"):
        assert main([command, str(tmp_path)]) == 2
        assert "not a run directory" in capsys.readouterr().err


def test_run_refuses_the_slurm_launcher_before_writing_anything(tmp_path, capsys):
    assert main(["run", str(QUICKSTART), "--on", "slurm", f"output.dir={tmp_path}"]) == 2
    assert "llaunch submit" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_multi_node_settings_are_checked_before_anything_is_written(tmp_path, capsys):
    assert main(["run", str(QUICKSTART), "--nodes", "2", "--gpus-per-node", "1", f"output.dir={tmp_path}"]) == 2
    assert "resources.rdzv_endpoint" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_light_commands_import_no_torch(run):
    code = f"""
import sys
from launcher.cli import main
for argv in (["plan", {str(QUICKSTART)!r}, "--on", "slurm", "--nodes", "2", "resources.procs_per_node=1"],
             ["plan", {str(QUICKSTART)!r}, "--on", "deepspeed"], ["validate", {str(QUICKSTART)!r}],
             ["status", {str(run.path)!r}], ["ls", {str(run.path.parent)!r}], ["logs", {str(run.path)!r}],
             ["cancel", {str(run.path)!r}]):
    assert main(argv) == 0, argv
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "deepspeed", "datasets"))
assert not heavy, heavy[:5]
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
