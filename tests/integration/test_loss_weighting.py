"""The loss of a step is the mean over the global batch's target tokens, so the batch layout never changes the model.

sft with prompt masking and uneven lengths (the quickstart's export fine-tuned on chat rows) and token_cls
(a tiny ModernBERT, whose micro batches hold different numbers of tagged words) each train 5 steps as
micro 8 x accum 1 x 1 process, micro 2 x accum 4 x 1 process and micro 4 x accum 1 x 2 processes: the
exported weights agree to 1e-5 (before the fix they differed by up to 3.7e-3). sft packed trains on the
same samples with the same loss as padded (weights to 1e-4: other attention kernels), and the first step's loss equals the transformers Trainer's on
the same eight examples with the same accumulation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.conftest import llaunch, run_dirs

pytestmark = pytest.mark.integration

STEPS = 5
LAYOUTS = {
    "micro8": ["train.micro_batch_size=8", "resources.launcher=local", "resources.procs_per_node=1"],
    "micro2-accum4": ["train.micro_batch_size=2", "resources.launcher=local", "resources.procs_per_node=1"],
    "micro4-2procs": ["train.micro_batch_size=4", "resources.launcher=torchrun", "resources.procs_per_node=2"],
}
COMMON = [f"train.max_steps={STEPS}", "train.global_batch_size=8", "train.warmup_steps=0", "eval.at_start=false",
          "eval.max_batches=1", "train.log_every=1", "checkpoint.keep_last=1", "logging.sample_ids=true", "resources.device=cpu"]
SFT = ["method.type=full", "method.lora=null", "train.lr=1e-3", "data.packing=false", "eval.max_new_tokens=2"]
NER = ["train.lr=1e-3", "early_stopping=null", "eval.every=0"]


def _train(recipe: str, overrides: list[str], out: Path, cache: Path) -> Path:
    result = llaunch("run", recipe, *COMMON, *overrides, f"output.dir={out}", f"output.cache_dir={cache}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [run] = run_dirs(out)
    return run


def _weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(str(run / "export" / "model.safetensors"))


def _train_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["kind"] == "train"]


def _assert_same_weights(runs: dict[str, Path]) -> None:
    reference = _weights(runs["micro8"])
    for name, run in runs.items():
        weights = _weights(run)
        assert weights.keys() == reference.keys()
        worst = max(float(np.abs(weights[k] - reference[k]).max()) for k in reference)
        assert worst <= 1e-5, f"{name}: weights differ from micro8 by {worst:.2e}"


@pytest.fixture(scope="module")
def sft_runs(quickstart_run, shared_cache, tmp_path_factory) -> dict[str, Path]:
    export = quickstart_run[0] / "export"
    base = [f"model.path={export}", *SFT]
    return {name: _train("recipes/sft_lora.yaml", base + layout, tmp_path_factory.mktemp(name), shared_cache)
            for name, layout in LAYOUTS.items()}


def test_sft_weights_do_not_depend_on_micro_batch_accumulation_or_world_size(sft_runs):
    _assert_same_weights(sft_runs)
    losses = {name: [row["loss"] for row in _train_rows(run)] for name, run in sft_runs.items()}
    for name, values in losses.items():
        assert np.allclose(values, losses["micro8"], rtol=1e-5), (name, values, losses["micro8"])


def test_token_cls_weights_do_not_depend_on_micro_batch_accumulation_or_world_size(shared_cache, tmp_path_factory):
    runs = {name: _train("recipes/token_cls.yaml", NER + layout, tmp_path_factory.mktemp(name), shared_cache)
            for name, layout in LAYOUTS.items()}
    _assert_same_weights(runs)


def test_sft_packed_trains_the_same_samples_with_the_same_loss(sft_runs, quickstart_run, shared_cache, tmp_path):
    padded = sft_runs["micro8"]
    overrides = [f"model.path={quickstart_run[0] / 'export'}", *SFT, "data.packing=true", *LAYOUTS["micro8"],
                 f"train.max_steps={STEPS}"]
    packed = _train("recipes/sft_lora.yaml", overrides, tmp_path, shared_cache)
    assert _ids(padded) == _ids(packed)
    first = [_train_rows(run)[0]["loss"] for run in (padded, packed)]
    assert first[1] == pytest.approx(first[0], rel=1e-5)
    # per-example attention kernels against one masked batch: the same math, summed in another order
    worst = max(float(np.abs(a - b).max()) for a, b in zip(_weights(padded).values(), _weights(packed).values()))
    assert worst <= 1e-4


def _ids(run: Path, step: int | None = None) -> list[list[int]]:
    """The sample ids each micro batch of rank 0 trained on (of one step, or of all)."""
    rows = [json.loads(line) for line in (run / "logs" / "samples-rank0.jsonl").read_text().splitlines()]
    return [row["ids"] for row in rows if step is None or row["step"] == step]


def test_first_step_loss_equals_the_transformers_trainer(sft_runs):
    """The Trainer (num_items_in_batch) on the micro2-accum4 run's first eight examples, in its micro batches."""
    import torch
    from transformers import (AutoModelForCausalLM, DataCollatorForSeq2Seq, PreTrainedTokenizerFast, Trainer,
                              TrainingArguments)

    run = sft_runs["micro2-accum4"]
    order = [i for ids in _ids(run, step=1) for i in ids]
    prepared = _prepared_columns(run)
    examples = [{"input_ids": prepared["input_ids"][i].tolist(), "labels": prepared["labels"][i].tolist()}
                for i in order]
    tokenizer = PreTrainedTokenizerFast.from_pretrained(run / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(_model_path(run), dtype=torch.float32)

    class InOrder(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    args = TrainingArguments(output_dir=str(run / "hf-trainer"), per_device_train_batch_size=2,
                             gradient_accumulation_steps=4, max_steps=1, logging_steps=1, learning_rate=1e-3,
                             report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = InOrder(model=model, args=args, train_dataset=examples,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100))
    trainer.train()
    theirs = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    ours = _train_rows(run)[0]["loss"]
    assert ours == pytest.approx(theirs, rel=1e-4), (ours, theirs)


def _model_path(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "recipe.yaml").read_text())["model"]["path"]


def _prepared_columns(run: Path) -> dict:
    """The run's prepared training columns, from the data cache its recipe names."""
    from launcher.recipe import load_recipe
    from launcher.data.prepare import prepare

    recipe = load_recipe(run / "recipe.yaml")
    return prepare(recipe, log=lambda _: None).split("train")

