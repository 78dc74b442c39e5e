"""Best-checkpoint tracking, early stopping and the BEST mark that keep_last rotation never removes."""

from __future__ import annotations

import pytest

from launcher.checkpoints import BEST, MARKER, best_checkpoint, describe, step_dir
from launcher.errors import UserError
from launcher.recipe import load_recipe
from launcher.train.checkpoint import TrainerState, _mark_best, _rotate
from launcher.train.evaluation.best import BestTracker
from tests.conftest import ROOT

pytestmark = pytest.mark.unit
TOKEN_CLS = ROOT / "recipes" / "token_cls.yaml"


def test_tracker_finds_the_best_and_stops_after_patience():
    recipe = load_recipe(TOKEN_CLS, ["early_stopping.patience=2", "early_stopping.min_delta=0.01"])
    state = TrainerState()
    tracker = BestTracker(recipe, state)
    verdicts = [tracker.update(step, {"f1": f1, "loss": 1.0})
                for step, f1 in ((25, 0.5), (50, 0.8), (75, 0.805), (100, 0.79))]
    assert [v.new_best for v in verdicts] == [True, True, True, False]  # 0.805 is a new best ...
    assert [v.stop for v in verdicts] == [False, False, False, True]  # ... but not by min_delta: patience runs
    assert (state.best_step, state.best_value) == (75, 0.805)


def test_loss_is_minimised():
    recipe = load_recipe(TOKEN_CLS, ["eval.metric=loss", "~early_stopping"])
    state = TrainerState()
    tracker = BestTracker(recipe, state)
    assert tracker.update(10, {"loss": 2.0}).new_best and tracker.update(20, {"loss": 1.0}).new_best
    assert not tracker.update(30, {"loss": 1.5}).new_best and state.best_step == 20


def _checkpoints(root, steps):
    for step in steps:
        path = step_dir(root, step)
        path.mkdir(parents=True)
        (path / MARKER).write_text("done")


def test_rotation_keeps_the_best_checkpoint(tmp_path):
    _checkpoints(tmp_path, [10, 20, 30, 40])
    _mark_best(tmp_path, step_dir(tmp_path, 20))
    _rotate(tmp_path, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000020", "step-000040"]
    assert best_checkpoint(tmp_path)[0] == 20
    rows = {row["step"]: row for row in describe(tmp_path)}
    assert rows[20]["best"] and rows[40]["resume"] and not rows[40]["best"]

    _checkpoints(tmp_path, [50])
    _mark_best(tmp_path, step_dir(tmp_path, 50))  # a new best: the old mark goes, the old one may rotate
    _rotate(tmp_path, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000050"]
    assert (step_dir(tmp_path, 50) / BEST).is_file()


@pytest.mark.parametrize(("override", "message"), [
    ("eval.metric=bleu", "eval.metric='bleu' is not a metric of objective token_cls; valid: loss, accuracy"),
    ("eval.every=0", "early_stopping needs evaluations during training: set eval.every"),
    ("data.packing=true", "data.packing is for objective sft"),
])
def test_schema_refuses(override, message):
    with pytest.raises(UserError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")):
        load_recipe(TOKEN_CLS, [override])


def test_early_stopping_metric_defaults_to_eval_metric():
    recipe = load_recipe(TOKEN_CLS)
    assert recipe.early_stopping.metric == "f1" and recipe.eval.metric == "f1"
