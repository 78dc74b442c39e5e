"""Data preparation: tokenization + packing throughput with both cores (data.num_proc=2) on a larger
generated corpus, and the cached rerun's wall time as a fraction of the first (target <= 5%).

    python bench/data_prep.py [--lines 200000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import PYTHON, ROOT, run, save, table

sys.path.insert(0, str(ROOT))
from launcher.synthetic import quickstart_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(quickstart_corpus(args.lines, seed=7)) + "\n")
        argv = [PYTHON, "-m", "launcher", "prepare", str(ROOT / "recipes" / "quickstart.yaml"),
                f"data.train={corpus}", "data.eval=[]", "data.num_proc=2", f"output.cache_dir={tmp}/cache"]
        started = time.perf_counter()
        run(argv)
        first = time.perf_counter() - started
        started = time.perf_counter()
        run(argv)
        cached = time.perf_counter() - started
        meta = json.loads(next(Path(tmp, "cache").glob("data/*/meta.json")).read_text())
    tokens = meta["sizes"]["train"] * meta["seq_len"]
    rows = [["first prepare (tokenizer training + tokenize + pack)", f"{first:.1f} s",
             f"{tokens / meta['seconds']:,.0f} tokens/s in prepare"],
            ["cached rerun", f"{cached:.2f} s", f"{cached / first:.1%} of the first (target <= 5%)"]]
    print(table(rows, ["run", "wall time", "note"]))
    save("data_prep", {"lines": args.lines, "tokens": tokens, "first_seconds": first, "cached_seconds": cached,
                       "prepare_seconds": meta["seconds"], "tokens_per_s": tokens / meta["seconds"]})


if __name__ == "__main__":
    main()
