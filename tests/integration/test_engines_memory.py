"""The estimator against reality: the parameter, gradient and optimizer bytes `llaunch estimate` predicts
for the tiny model are within 10% of what each real engine holds per rank (2 torchrun processes on CPU,
tensor storages counted by tests/integration/engine_bytes.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from launcher.estimate import estimate_recipe
from launcher.recipe import load_recipe
from tests.conftest import QUICKSTART, ROOT, llaunch

pytestmark = pytest.mark.integration

CASES = {
    "ddp": "",
    "fsdp2": "parallel.strategy=fsdp2",
    "fsdp2-offload": "parallel.strategy=fsdp2;parallel.offload=params",
    "zero1": "parallel.strategy=zero1",
    "zero2": "parallel.strategy=zero2",
    "zero2-offload": "parallel.strategy=zero2;parallel.offload=optimizer",
    "zero3": "parallel.strategy=zero3",
    "zero3-offload-optimizer": "parallel.strategy=zero3;parallel.offload=optimizer",
    "zero3-offload-params": "parallel.strategy=zero3;parallel.offload=params",
    "ddp-lora": "method.type=lora",
    "fsdp2-lora": "parallel.strategy=fsdp2;method.type=lora",
    "zero2-lora": "parallel.strategy=zero2;method.type=lora",
    "ddp-freeze-top1": "method.type=freeze;method.freeze.train_top_blocks=1",
    "ddp-qlora-4bit": "method.type=qlora",
    "ddp-lora-8bit": "method.type=qlora;method.qlora.bits=8",
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory, shared_cache) -> dict[str, dict[str, float]]:
    prepared = llaunch("prepare", str(QUICKSTART), f"output.cache_dir={shared_cache}")
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    tokenizer = next(shared_cache.glob("tokenizers/*"))
    out = tmp_path_factory.mktemp("bytes") / "bytes.jsonl"
    env = {**os.environ, "LLAUNCH_TOKENIZER": str(tokenizer), "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(ROOT / "tests" / "integration" / "engine_bytes.py"), str(out), str(QUICKSTART),
         *(f"{name}={overrides}" for name, overrides in CASES.items())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows: dict[str, list[dict]] = {}
    for line in out.read_text().splitlines():
        row = json.loads(line)
        rows.setdefault(row["case"], []).append(row)
    return {case: {key: sum(r[key] for r in ranks) / len(ranks) for key in ("params", "grads", "optimizer")}
            for case, ranks in rows.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_estimate_matches_allocated_bytes(case, measured):
    recipe = load_recipe(QUICKSTART, [o for o in CASES[case].split(";") if o])
    predicted = estimate_recipe(recipe)
    real = measured[case]
    for key, value in (("params", predicted.params + predicted.params_cpu),
                       ("grads", predicted.grads + predicted.grads_cpu),
                       ("optimizer", predicted.optimizer + predicted.optimizer_cpu)):
        assert value == pytest.approx(real[key], rel=0.10), (key, value, real[key])
