"""Packing: useful (non-padding) tokens per batch and per second, padding-free packing vs padding to the
longest row, on SFT chat rows whose lengths vary by 10x (as real instruction data does).

Both contenders train the same examples in the same order with the same micro batch; the worker logs
the non-padding fraction of what it fed the model and the non-padding tokens/s.

--attention compares the kernels that keep packed examples apart (launcher/train/packed_attention.py) on the
same model and rows of 8 examples of 30-300 tokens, alternating: the per-example SDPA loop, FlexAttention with a
document mask and, on CUDA with flash-attn installed, flash-attn's varlen kernel. On CPU the step is the
forward only (FlexAttention has no backward there) and FlexAttention runs unfused (compiling it for varying
row lengths fails in torch 2.13); on CUDA forward + backward in bf16, FlexAttention compiled. Each path's
per-example loss is checked against the examples run alone. Writes bench/results/packing_attention.json.

    python bench/packing.py [--rounds 3] [--cuda]
    python bench/packing.py --attention [--rounds 3]

--cuda runs both contenders on the GPU in bf16 (bench/gpu_check.py's packed SFT case).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from common import PYTHON, ROOT, alternate, medians, run, save, table

from launcher.synthetic.instructions import example

RECIPE = str(ROOT / "bench" / "recipes" / "packing.yaml")
SKIP = 10


def variable_length_rows(path: Path, count: int = 1000) -> None:
    """Chat rows with 1 to 10 stories before the question: 30 to 300 tokens."""
    rng = random.Random(7)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(count):
            extra = " ".join(example(rng)["messages"][0]["content"].rsplit(" .", 1)[0] + " ."
                             for _ in range(rng.randrange(0, 10)))
            row = example(rng)
            row["messages"][0]["content"] = f"{extra} {row['messages'][0]['content']}".strip()
            handle.write(json.dumps(row) + "\n")


def measure(out: Path, cache: Path, data: Path, packing: bool, extra: list[str]) -> tuple[float, float]:
    """(median non-padding fraction, non-padding tokens/s) over the logged windows after step SKIP."""
    run([PYTHON, "-m", "launcher", "run", RECIPE, f"output.dir={out}", f"output.cache_dir={cache}",
         f"data.train={data}", f"data.packing={str(packing).lower()}", *extra])
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    windows = [row for row in rows if row["kind"] == "train" and row["step"] > SKIP]
    fraction = sorted(row["nonpad_fraction"] for row in windows)[len(windows) // 2]
    tokens_per_s = sorted(row["tokens_per_s"] for row in windows)[len(windows) // 2]
    return fraction, tokens_per_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--attention", action="store_true", help="compare the packed attention kernels")
    parser.add_argument("--cuda", action="store_true", help="train on the GPU in bf16")
    args = parser.parse_args()
    extra = ["resources.device=cuda", "parallel.mixed_precision=bf16"] if args.cuda else []
    if args.attention:
        from packing_attention import compare

        save("packing_attention", compare(args.rounds))
        return
    fractions: dict[str, list[float]] = {"packing": [], "padding": []}
    with tempfile.TemporaryDirectory() as tmp:
        out, cache, data = Path(tmp) / "runs", Path(tmp) / "cache", Path(tmp) / "rows.jsonl"
        variable_length_rows(data)

        def contender(name: str, packing: bool):
            def once() -> float:
                fraction, tokens_per_s = measure(out, cache, data, packing, extra)
                fractions[name].append(fraction)
                return tokens_per_s
            return once

        samples = alternate({"packing": contender("packing", True), "padding": contender("padding", False)},
                            args.rounds)
    speed = medians(samples)
    fraction = medians(fractions)
    rows = [[name, f"{fraction[name]:.3f}", f"{speed[name]:,.0f}"] for name in ("packing", "padding")]
    print(table(rows, ["batches", "non-padding fraction (target >= 0.95 packed)", "non-padding tokens/s"]))
    print(f"useful tokens/s, packing / padding: {speed['packing'] / speed['padding']:.2f}x")
    save("packing", {"device": "cuda" if args.cuda else "cpu", "median_tokens_per_s": speed, "median_nonpad_fraction": fraction, "samples": samples,
                     "fractions": fractions})


if __name__ == "__main__":
    main()
