"""dpo and reward on the CPU recipes (real `llaunch run`s from the quickstart's export): DPO's reward
accuracy rises from 0.5 to >= 0.90 on held-out pairs, a run killed with SIGKILL resumes bitwise equal, the
export is the tuned policy; full fine-tuning precomputes the reference once (2 processes) and reads it back
on resume; the reward model ranks >= 0.90 of held-out pairs right, and its export is a one-label
transformers sequence classifier that does the same."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, llaunch, run_dirs
from tests.integration.test_checkpoints import hard_kill, train_losses, wait_for_checkpoint

pytestmark = pytest.mark.integration
RECIPES = ROOT / "recipes"
EVAL_PAIRS = [json.loads(line) for line in (RECIPES / "data/preference/eval.jsonl").read_text().splitlines()]
DPO_ARGS = ["checkpoint.every=20", "checkpoint.keep_last=2", "logging.tensorboard=false"]


def _args(recipe: str, export: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [str(RECIPES / recipe), f"model.path={export}", f"output.dir={out}", f"output.cache_dir={cache}", *extra]


def _train(*args: str) -> Path:
    result = llaunch("run", *args)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return run_dirs(Path(next(a for a in args if a.startswith("output.dir=")).split("=", 1)[1]))[0]


def _evals(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["kind"] == "eval"]


def _answer_logp(model, tokenizer, prompt: str, answer: str) -> float:
    import torch

    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = prompt_ids + tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logps = model(input_ids=torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
    return sum(logps[t - 1, ids[t]].item() for t in range(len(prompt_ids), len(ids)))


@pytest.fixture(scope="module")
def dpo_run(quickstart_run, shared_cache, tmp_path_factory) -> Path:
    return _train(*_args("dpo.yaml", quickstart_run[0] / "export", tmp_path_factory.mktemp("dpo"), shared_cache,
                         *DPO_ARGS))


def test_lora_dpo_learns_the_preferred_continuations(dpo_run, quickstart_run):
    scores = _evals(dpo_run)
    assert scores[0]["step"] == 0 and scores[0]["reward_accuracy"] == 0.5  # the reference is the policy itself
    assert scores[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert scores[-1]["reward_accuracy"] >= 0.90, scores
    assert scores[-1]["reward_margin"] > 0 and scores[-1]["chosen_logp"] > scores[0]["chosen_logp"]
    report = llaunch("report", str(dpo_run))
    assert report.returncode == 0 and "reward_accuracy" in report.stdout
    # the export is the tuned policy: its log-ratio to the starting model prefers the chosen answers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(dpo_run / "export")
    tuned = AutoModelForCausalLM.from_pretrained(dpo_run / "export").eval()
    base = AutoModelForCausalLM.from_pretrained(quickstart_run[0] / "export").eval()
    pairs = EVAL_PAIRS[:60]
    wins = sum((_answer_logp(tuned, tokenizer, p["prompt"], p["chosen"]) - _answer_logp(base, tokenizer, p["prompt"], p["chosen"]))
               > (_answer_logp(tuned, tokenizer, p["prompt"], p["rejected"]) - _answer_logp(base, tokenizer, p["prompt"], p["rejected"]))
               for p in pairs)
    assert wins / len(pairs) >= 0.90
    assert (dpo_run / "export" / "adapter" / "adapter_config.json").is_file()


def test_lora_dpo_killed_resumes_bitwise(dpo_run, quickstart_run, shared_cache, tmp_path):
    from safetensors.numpy import load_file

    argv = [sys.executable, "-m", "launcher", "run",
            *_args("dpo.yaml", quickstart_run[0] / "export", tmp_path, shared_cache, *DPO_ARGS)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = wait_for_checkpoint(tmp_path, 20, proc)
    hard_kill(proc)
    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert "resumed from" in resumed.stdout
    assert train_losses(run) == train_losses(dpo_run)
    mine, reference = (load_file(str(r / "export" / "adapter" / "adapter_model.safetensors")) for r in (run, dpo_run))
    assert all((mine[k] == reference[k]).all() for k in reference)


def test_full_dpo_precomputes_the_reference_once_on_two_processes(quickstart_run, shared_cache, tmp_path):
    args = _args("dpo.yaml", quickstart_run[0] / "export", tmp_path, shared_cache, "method.type=full",
                 "method.lora=null", "resources.launcher=torchrun", "resources.procs_per_node=2",
                 "train.micro_batch_size=8", "train.max_steps=10", "train.lr=1e-4", "eval.every=5",
                 "checkpoint.every=5", "checkpoint.keep_last=2", "logging.tensorboard=false")
    run = _train(*args)
    scores = _evals(run)
    assert scores[0]["reward_accuracy"] == 0.5 and scores[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert scores[-1]["reward_accuracy"] > 0.6, scores
    written = sorted(p.name for p in shared_cache.glob("data/*/reference-*.npy"))
    assert {name.rsplit(".", 2)[1] for name in written} >= {"train", "eval"}
    # a resumed run reads the starting model's log-probs back (from the trained weights they would differ)
    (run / "checkpoints" / "step-000010").rename(run / "step-000010.moved")
    # with the reference gone, a resume past the start refuses (the trained weights would give another one)
    [moved] = [path for path in shared_cache.glob("data/*/reference-*.train.npy") if path.name in written]
    moved.rename(moved.with_name("kept.npy"))
    try:
        refused = llaunch("resume", str(run))
    finally:
        moved.with_name("kept.npy").rename(moved)
    assert refused.returncode == 1
    assert f"{moved} is gone and this run resumed at step 5" in refused.stderr + refused.stdout
    resumed = llaunch("resume", str(run))
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert _evals(run)[-1]["reward_accuracy"] == scores[-1]["reward_accuracy"]


def test_reward_model_ranks_held_out_pairs_and_exports_a_sequence_classifier(quickstart_run, shared_cache, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = _train(*_args("reward.yaml", quickstart_run[0] / "export", tmp_path, shared_cache,
                        "logging.tensorboard=false"))
    scores = _evals(run)
    assert scores[0]["pairwise_accuracy"] < 0.6 and scores[-1]["pairwise_accuracy"] >= 0.90, scores
    model = AutoModelForSequenceClassification.from_pretrained(run / "export").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    assert model.config.num_labels == 1

    def score(text: str) -> float:
        with torch.no_grad():
            return model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()

    pairs = EVAL_PAIRS[:100]
    right = sum(score(p["prompt"] + p["chosen"]) > score(p["prompt"] + p["rejected"]) for p in pairs)
    assert right / len(pairs) >= 0.90
    again = llaunch("eval", str(run / "export"), "--data", str(RECIPES / "data/preference/eval.jsonl"), "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["metrics"]["pairwise_accuracy"] == pytest.approx(scores[-1]["pairwise_accuracy"])


@pytest.mark.parametrize("strategy, method", [("fsdp2", ["method.type=lora"]),
                                              ("zero3", ["method.type=full", "method.lora=null", "train.lr=1e-4"])])
def test_dpo_gets_its_reference_under_sharding_engines(quickstart_run, shared_cache, tmp_path, strategy, method):
    """FSDP2 / ZeRO-3 gather weights inside forward: the adapter-disabled and the precomputed reference keep the
    ranks' forwards in step; the reference equals the policy at the start (loss ln 2) and the run learns."""
    run = _train(*_args("dpo.yaml", quickstart_run[0] / "export", tmp_path, shared_cache, *method,
                        "resources.launcher=torchrun", "resources.procs_per_node=2", f"parallel.strategy={strategy}",
                        "train.max_steps=6", "train.micro_batch_size=8", "eval.every=3", "eval.max_batches=2",
                        "train.log_every=3", "logging.tensorboard=false"))
    scores = _evals(run)
    assert scores[0]["reward_accuracy"] == 0.5 and scores[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert scores[-1]["reward_accuracy"] > 0.7 and scores[-1]["loss"] < 0.6, scores
