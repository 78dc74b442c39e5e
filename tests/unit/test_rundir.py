"""The run dir's files: result.json as the job script reads it, objective.json, metrics rows, the run summary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from launcher.cli import main
from launcher.recipe import load_recipe
from launcher.report import summary
from launcher.rundir import Result, RunDir, metrics_line, read_objective, write_objective
from tests.conftest import QUICKSTART, ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def run(tmp_path) -> RunDir:
    return RunDir.create(load_recipe(QUICKSTART, [f"output.dir={tmp_path}", "train.max_steps=20"]))


def job_script_reads(run: RunDir) -> subprocess.CompletedProcess:
    """What the sbatch script asks at the end of a job."""
    return subprocess.run([sys.executable, "-m", "launcher.rundir", str(run.path)], capture_output=True, text=True,
                          cwd=run.path)


@pytest.mark.parametrize(("result", "answer"), [
    (Result("completed", step=20, best_step=10, best_metric="loss", best_value=0.5), "completed 0"),
    (Result("interrupted", step=3), "interrupted 0"),
    (Result("failed", error="bad row", exit_code=2), "failed 2"),
    (Result("failed", error="no code"), "failed 1"),
])
def test_the_job_script_reads_how_the_run_ended(run, result, answer):
    run.write_result(result)
    assert run.read_result() == result
    done = job_script_reads(run)
    assert (done.returncode, done.stdout.strip()) == (0, answer)


def test_no_result_is_no_answer_and_a_damaged_one_is_one_line(run, capsys):
    assert job_script_reads(run).stdout == ""
    run.result_file.write_text('{"status": "comp')
    done = job_script_reads(run)
    assert done.returncode == 1 and done.stdout == "" and "result.json: not valid JSON" in done.stderr
    assert main(["status", str(run.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "result.json: not valid JSON" in err


def test_a_result_written_by_an_older_worker_still_reads(run):
    run.result_file.write_text(json.dumps({"status": "completed", "step": 5, "early_stopped": True, "extra": 1}))
    assert run.read_result() == Result("completed", step=5, early_stopped=True)


def test_objective_file_keeps_settings_not_file_lists(tmp_path):
    data = {"train": ["a.jsonl"], "eval": ["b.jsonl"], "eval_fraction": 0.1, "seq_len": 64, "text_key": "text"}
    write_objective(tmp_path / "export", "seq_cls", ["neg", "pos"], data, {"max_new_tokens": 8})
    found = read_objective(tmp_path / "export")
    assert (found.objective, found.labels, found.data, found.eval) == (
        "seq_cls", ["neg", "pos"], {"seq_len": 64, "text_key": "text"}, {"max_new_tokens": 8})
    assert read_objective(tmp_path) is None


def test_metrics_rows_read_back_as_written_and_a_cut_tail_is_skipped(run):
    lines = [metrics_line("train", 10, {"loss": 2.0}), metrics_line("eval", 10, {"loss": 2.5})]
    run.metrics.write_text("".join(lines) + metrics_line("train", 20, {"loss": 1.0})[:12])
    rows = run.read_metrics()
    assert [(row["kind"], row["step"], row["loss"]) for row in rows] == [("train", 10, 2.0), ("eval", 10, 2.5)]
    assert all(isinstance(row["time"], float) for row in rows) and run.last_train_row() == rows[0]


def test_summary_at_the_end_of_a_run_and_in_report(run):
    rows = [{"kind": "eval", "step": 0, "time": 0.0, "loss": 5.8, "perplexity": 330.0},
            {"kind": "train", "step": 20, "time": 60.0, "loss": 3.0, "consumed_samples": 320},
            {"kind": "eval", "step": 20, "time": 61.0, "loss": 2.5, "perplexity": 12.2}]
    run.metrics.write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"kind": "tr')  # a live run's tail
    ended = summary(run, seconds=75.2, code=3).splitlines()
    assert ended[1] == "run failed at step 20/20 in 1m15s (exit code 3)"  # no result.json: the workers died
    assert "eval loss  5.8000 (step 0) -> 2.5000 (step 20, perplexity 12.18)" in ended
    assert ended[-1] == f"continue with: llaunch resume {run.path}"
    (run.checkpoints / "step-000020").mkdir(parents=True)
    (run.checkpoints / "step-000020" / "COMPLETE").touch()
    run.write_result(Result("completed", step=20, export=str(run.export)))
    report = summary(run).splitlines()
    assert report[0] == "status     completed at step 20/20"
    assert "time       1.0 min logged; 40,960 tokens seen; last loss 3.0000" in report
    assert f"checkpoint {run.checkpoints / 'step-000020'} (newest complete of 1)" in report
    assert f"export     {run.export} (transformers from_pretrained)" in report
    assert not any(line.startswith("continue with") for line in report)


def test_the_job_script_reader_imports_nothing_heavy(run):
    code = f"""
import sys, runpy
sys.argv = ["launcher.rundir", {str(run.path)!r}]
try:
    runpy.run_module("launcher.rundir", run_name="__main__")
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "pydantic", "yaml"))
assert not heavy, heavy[:5]
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
