"""`llaunch report` draws a run's curves from metrics.jsonl; `llaunch init` starts a recipe from a shipped one."""

from __future__ import annotations

import json

import pytest
import yaml

from launcher.recipe import load_recipe
from tests.conftest import QUICKSTART, llaunch

pytestmark = pytest.mark.unit


def test_report_plots_and_summarises_a_run(tmp_path):
    run = tmp_path / "quickstart-20260101-000000"
    (run / "checkpoints" / "step-000020").mkdir(parents=True)
    (run / "checkpoints" / "step-000020" / "COMPLETE").write_text("step 20\n")
    recipe = load_recipe(QUICKSTART, ["train.max_steps=20"])
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json", by_alias=True)))
    rows = [{"kind": "eval", "step": 0, "time": 0.0, "loss": 5.8, "perplexity": 330.0}]
    rows += [{"kind": "train", "step": s, "time": s * 0.1, "loss": 5.0 - s / 10, "lr": 1e-3, "tokens_per_s": 4e4,
              "consumed_samples": 16 * s} for s in (10, 20)]
    rows += [{"kind": "eval", "step": 20, "time": 2.1, "loss": 2.5, "perplexity": 12.2}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "result.json").write_text(json.dumps({"status": "completed", "step": 20}))

    result = llaunch("report", str(run))
    assert result.returncode == 0, result.stderr
    assert "status     completed at step 20/20" in result.stdout
    assert "40,960 tokens seen" in result.stdout  # 320 samples x 128 tokens
    assert "final eval step 20  loss 2.5  perplexity 12.2" in result.stdout
    png = (run / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_init_lists_and_copies_a_shipped_recipe(tmp_path):
    listing = llaunch("init")
    assert "quickstart" in listing.stdout
    target = tmp_path / "mine.yaml"
    assert llaunch("init", "quickstart", "--to", str(target)).returncode == 0
    recipe = load_recipe(target)
    assert recipe.name == "my-quickstart"
    assert recipe.data.train == load_recipe(QUICKSTART).data.train  # data paths still point at the shipped data
    again = llaunch("init", "quickstart", "--to", str(target))
    assert again.returncode == 2 and "exists" in again.stderr
    unknown = llaunch("init", "quickstar")
    assert unknown.returncode == 2 and "available: " in unknown.stderr
