"""Data preparation at scale: tokens/s with 1 and 2 worker processes (target: 2 >= 1.7x one), the peak memory
of preparing a corpus and 10x that corpus (target: within 1.3x), and how fast inputs are fingerprinted.

    python bench/data_prep.py [--shards 4] [--docs 40000] [--rounds 2]

The corpus: jsonl.zst shards of generated stories (launcher/synthetic), prepared by the quickstart recipe (clm, a
320-piece tokenizer trained once on a plain sample). Every prepare runs in a fresh process with a fresh cache,
one core per worker (TOKENIZERS_PARALLELISM=false), through a wrapper that reports the largest resident set of
it and its workers (getrusage RUSAGE_CHILDREN ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from common import PEAK_RSS, PYTHON, ROOT, run, save, table

sys.path.insert(0, str(ROOT))
from launcher.data.fingerprint import file_digest  # noqa: E402
from launcher.synthetic import quickstart_corpus  # noqa: E402

def write_corpus(directory: Path, shards: int, docs: int, first_seed: int) -> int:
    """`shards` jsonl.zst files of `docs` stories each; returns the uncompressed bytes."""
    directory.mkdir(parents=True)
    raw = 0
    for k in range(shards):
        body = "".join(json.dumps({"text": line}) + "\n" for line in quickstart_corpus(docs, seed=first_seed + k)).encode()
        raw += len(body)
        (directory / f"part-{k:05d}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
    return raw


def prepare(corpus: Path, sample: Path, cache: Path, workers: int) -> dict:
    argv = [PYTHON, "-c", PEAK_RSS, PYTHON, "-m", "launcher", "prepare", str(ROOT / "recipes" / "quickstart.yaml"),
            f"data.train={corpus}", "data.eval=[]", f"tokenizer.train.files=[{sample}]", f"output.cache_dir={cache}",
            "--workers", str(workers)]
    started = time.perf_counter()
    peak_kib = int(run(argv).stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - started
    entry = next(cache.glob("data/*/meta.json")).parent
    meta = json.loads((entry / "meta.json").read_text())
    tokens = meta["sizes"]["train"] * meta["seq_len"]
    stored = sum(p.stat().st_size for p in entry.glob("*.npy"))
    return {"wall": wall, "seconds": meta["seconds"], "tokens": tokens, "tokens_per_s": tokens / meta["seconds"],
            "peak_rss_mib": peak_kib / 1024, "bytes_per_token": stored / tokens}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--docs", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sample = root / "sample.txt"
        sample.write_text("\n".join(quickstart_corpus(20_000, seed=1)) + "\n")
        raw = write_corpus(root / "x1", args.shards, args.docs, 100)
        raw10 = write_corpus(root / "x10", 10 * args.shards, args.docs, 1000)
        runs: dict[str, list[dict]] = {"1 worker": [], "2 workers": []}
        for round_no in range(args.rounds):  # alternated: the machine's load drifts
            for name, workers in (("1 worker", 1), ("2 workers", 2)):
                runs[name].append(prepare(root / "x1", sample, root / f"cache-{name[0]}-{round_no}", workers))
                print(f"  round {round_no + 1}: {name}: {runs[name][-1]['tokens_per_s']:,.0f} tokens/s", flush=True)
        cached = prepare(root / "x1", sample, root / "cache-1-0", 1)["wall"]  # found in the cache: no work
        big = prepare(root / "x10", sample, root / "cache-x10", 1)
        large = root / "large.bin"  # hashing speed on a shard of a real corpus's size, not on many small files
        large.write_bytes(os.urandom(256 << 20))
        started = time.perf_counter()
        file_digest(str(large), root / "digests")
        hashed, hashed_bytes = time.perf_counter() - started, large.stat().st_size
        files = sorted((root / "x10").iterdir())
        for file in files:
            file_digest(str(file), root / "digests")
        started = time.perf_counter()
        for file in files:
            file_digest(str(file), root / "digests")
        stamped = time.perf_counter() - started
    rate = {name: statistics.median(r["tokens_per_s"] for r in results) for name, results in runs.items()}
    seconds1 = statistics.median(r["seconds"] for r in runs["1 worker"])
    small = max(r["peak_rss_mib"] for r in runs["1 worker"])
    one = runs["1 worker"][0]
    rows = [["1 worker", f"{rate['1 worker']:,.0f} tokens/s", f"{raw / seconds1 / 1e6:.2f} MB/s of jsonl per core"],
            ["2 workers", f"{rate['2 workers']:,.0f} tokens/s", f"{rate['2 workers'] / rate['1 worker']:.2f}x one "
             "(target >= 1.7x)"],
            ["peak RSS, corpus", f"{small:,.0f} MiB", f"{one['tokens']:,} tokens, {args.shards} shards"],
            ["peak RSS, 10x corpus", f"{big['peak_rss_mib']:,.0f} MiB",
             f"{big['peak_rss_mib'] / small:.2f}x (target <= 1.3x), {big['tokens']:,} tokens"],
            ["fingerprint, first", f"{hashed_bytes / hashed / 1e6:,.0f} MB/s", "sha256 of a 256 MiB file, one core"],
            ["fingerprint, unchanged", f"{stamped / len(files) * 1e3:.2f} ms/file", "a stat and the kept digest"],
            ["cached rerun", f"{cached:.2f} s", f"{cached / one['wall']:.1%} of the first (target <= 5%)"],
            ["prepared columns", f"{one['bytes_per_token']:.2f} B/token", "int32 token ids, packed blocks"]]
    print(table(rows, ["measure", "value", "note"]))
    save("data_prep", {"shards": args.shards, "docs_per_shard": args.docs, "rounds": args.rounds,
                       "jsonl_bytes": raw, "jsonl_bytes_10x": raw10, "runs": runs, "x10": big,
                       "tokens_per_s": rate, "speedup_2_workers": rate["2 workers"] / rate["1 worker"],
                       "jsonl_mb_per_s_per_core": raw / seconds1 / 1e6,
                       "peak_rss_mib": {"x1": small, "x10": big["peak_rss_mib"]},
                       "peak_rss_ratio": big["peak_rss_mib"] / small,
                       "fingerprint_mb_per_s": hashed_bytes / hashed / 1e6,
                       "fingerprint_unchanged_ms_per_file": stamped / len(files) * 1e3,
                       "cached_rerun_seconds": cached, "bytes_per_token": one["bytes_per_token"]})


if __name__ == "__main__":
    main()
