"""The sample order's cost per global batch (launcher/data/order.py): one source and a 3-source weighted
mixture of 10^9 samples, batches of 1024 (target < 1 ms and < 10 MB each). Median of the repeats' mean
ms/batch, wall and CPU; the peak is tracemalloc's over a separate pass (it slows the pass it watches).

    python bench/sample_order.py [--batches 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

from common import ROOT, save, table

sys.path.insert(0, str(ROOT))
from launcher.data.order import GlobalOrder

BATCH = 1024
START = 123_456_789  # mid-epoch, mid-round: nothing cached from the start


def per_batch(order: GlobalOrder, batches: int) -> tuple[float, float]:
    """(wall, CPU) ms per batch: on shared cores the CPU time is the steadier of the two."""
    wall, cpu = time.perf_counter(), time.process_time()
    for step in range(batches):
        order.indices(START + step * BATCH, BATCH)
    return (time.perf_counter() - wall) / batches * 1e3, (time.process_time() - cpu) / batches * 1e3


def peak_mb(order: GlobalOrder, batches: int) -> float:
    tracemalloc.start()
    for step in range(batches):
        order.indices(START + step * BATCH, BATCH)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    orders = {"1 source, 10^9 samples": lambda: GlobalOrder(10**9, seed=7),
              "3 sources (0.5/0.3/0.2), 10^9 samples": lambda: GlobalOrder(
                  [6 * 10**8, 3 * 10**8, 10**8], seed=7, weights=[0.5, 0.3, 0.2])}
    result = {}
    for name, make in orders.items():
        wall, cpu = zip(*(per_batch(make(), args.batches) for _ in range(args.repeats)))
        result[name] = {"ms_per_batch": statistics.median(wall), "cpu_ms_per_batch": statistics.median(cpu),
                        "samples_ms": wall, "peak_mb": peak_mb(make(), args.batches)}
    rows = [[name, f"{r['ms_per_batch']:.3f} ms", f"{r['cpu_ms_per_batch']:.3f} ms", f"{r['peak_mb']:.2f} MB"]
            for name, r in result.items()]
    print(table(rows, ["order", f"wall per batch of {BATCH} (target < 1 ms)", "CPU per batch",
                       "peak memory (target < 10 MB)"]))
    save("sample_order", {"batch": BATCH, "batches": args.batches, "orders": result})


if __name__ == "__main__":
    main()
