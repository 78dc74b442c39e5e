"""A weighted mixture of data.train sources: each source is prepared on its own and laid end to end,
sampled at its weight in the global order, and counted per source in metrics.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from launcher.data.prepare import prepare
from launcher.recipe.loading import load_recipe
from tests.conftest import ROOT, llaunch, run_dirs
from tests.integration.test_checkpoints import hard_kill, train_losses, wait_for_checkpoint
from tests.integration.test_objectives_data import TINY_LLAMA, jsonl, make_recipe

pytestmark = pytest.mark.integration


def _chat(user: str, reply: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}


def _sources(tmp_path):
    colors = [_chat(f"what color is thing {i}", ["red", "blue", "green"][i % 3]) for i in range(24)]
    counts = [_chat(f"count to {n}", " ".join(["one", "two", "three", "four"][:n])) for n in (1, 2, 3, 4)]
    return jsonl(tmp_path / "colors.jsonl", colors), jsonl(tmp_path / "counts.jsonl", counts)


def test_each_source_is_prepared_alone_and_sampled_at_its_weight(tmp_path):
    colors, counts = _sources(tmp_path)
    data = {"train": [{"path": colors, "weight": 0.25}, {"path": counts, "weight": 0.75}], "chat_template": "chatml",
            "seq_len": 64}
    recipe = make_recipe(tmp_path, "sft", data, TINY_LLAMA)
    assert recipe.data.train == [colors, counts] and recipe.data.weights == [0.25, 0.75]
    prepared = prepare(recipe, log=lambda _: None)
    assert [s["size"] for s in prepared.meta["sources"]] == [24, 4]
    assert prepared.source_names == ["colors.jsonl", "counts.jsonl"]
    (tmp_path / "alone").mkdir()
    alone = prepare(make_recipe(tmp_path / "alone", "sft", {**data, "train": counts}, TINY_LLAMA), log=lambda _: None)
    mixed, single = prepared.split("train")["input_ids"], alone.split("train")["input_ids"]
    assert all(np.array_equal(mixed[24 + k], single[k]) for k in range(4))
    order = prepared.train_order(recipe)
    drawn = order.indices(0, 10_000)
    assert abs(np.mean(drawn >= 24) - 0.75) < 0.01


def _mixture_recipe(tmp_path, weights: tuple[float, float], log_every: int) -> None:
    """An sft recipe training 30 steps on the two sources at these weights."""
    sources = _sources(tmp_path)
    data = {"train": [{"path": path, "weight": weight} for path, weight in zip(sources, weights)],
            "chat_template": "chatml", "seq_len": 64}
    make_recipe(tmp_path, "sft", data, TINY_LLAMA, train={"max_steps": 30, "micro_batch_size": 4, "lr": 0.01,
                                                          "log_every": log_every})


def test_a_mixture_trains_and_logs_what_each_source_gave(tmp_path):
    _mixture_recipe(tmp_path, (0.5, 0.5), log_every=10)
    result = llaunch("run", str(tmp_path / "recipe.yaml"), "checkpoint.at_end=false", "output.export=false")
    assert result.returncode == 0, result.stderr
    run = run_dirs(tmp_path / "runs")[0]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [row for row in rows if row["kind"] == "train"]
    by_source = train[-1]["consumed_by_source"]
    assert sorted(by_source) == ["colors.jsonl", "counts.jsonl"] and sum(by_source.values()) == 120
    assert min(by_source.values()) > 40  # half each, drawn in a shuffled round
    assert train[-1]["loss"] < train[0]["loss"] * 0.7
    # the tokens each source gave: the lengths of the 120 samples the order drew, counted by source
    recipe = load_recipe(run / "recipe.yaml")
    prepared = prepare(recipe, log=lambda _: None)
    drawn = prepared.train_order(recipe).indices(0, 120)
    lengths = prepared.split("train")["input_ids"].lengths()[drawn]
    expected = {"colors.jsonl": int(lengths[drawn < 24].sum()), "counts.jsonl": int(lengths[drawn >= 24].sum())}
    assert train[-1]["tokens_by_source"] == expected
    shown = json.loads(llaunch("status", "--json", str(run)).stdout)[0]
    assert shown["consumed_by_source"] == by_source and shown["tokens_by_source"] == expected
    report = llaunch("report", str(run)).stdout
    assert f"colors.jsonl {by_source['colors.jsonl']:,} samples, {expected['colors.jsonl']:,} tokens" in report


def test_a_mixture_run_killed_hard_resumes_bitwise_equal(tmp_path):
    _mixture_recipe(tmp_path, (0.7, 0.3), log_every=1)
    argv = [sys.executable, "-m", "launcher", "run", str(tmp_path / "recipe.yaml"), "checkpoint.every=10",
            "eval.at_start=false", "logging.tensorboard=false"]
    runs = {}
    for name in ("reference", "killed"):
        out = tmp_path / name
        proc = subprocess.Popen([*argv, f"output.dir={out}", f"output.cache_dir={tmp_path / 'cache'}"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if name == "killed":
            run = wait_for_checkpoint(out, 10, proc)
            hard_kill(proc)
            assert not (run / "result.json").exists()  # killed before the end
            resumed = llaunch("resume", str(run))
            assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        else:
            assert proc.wait() == 0, proc.stdout.read()
        runs[name] = run_dirs(out)[0]
    expected, got = (load_file(runs[n] / "export" / "model.safetensors") for n in ("reference", "killed"))
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert train_losses(runs["killed"]) == train_losses(runs["reference"])
    last = [json.loads(line) for line in (runs["killed"] / "metrics.jsonl").read_text().splitlines()
            if "consumed_by_source" in line][-1]
    assert sum(last["consumed_by_source"].values()) == 120
    reference = [json.loads(line) for line in (runs["reference"] / "metrics.jsonl").read_text().splitlines()
                 if "tokens_by_source" in line][-1]
    assert last["tokens_by_source"] == reference["tokens_by_source"]  # counted across the kill exactly once
