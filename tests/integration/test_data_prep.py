"""Preparation shard by shard: N worker processes and the tasks of an array job give byte for byte the arrays of
one process; packing crosses shard boundaries as in one file; a corrupt shard fails its task with one line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard

from launcher.data.prepare import prepare
from tests.conftest import llaunch
from tests.integration.test_objectives_data import make_recipe

pytestmark = pytest.mark.integration

WORDS = "the quick brown fox jumps over a lazy dog while seven small birds sing about rain and sun".split()


def _rows(source: int, shard: int, count: int = 40) -> list[dict]:
    out = []
    for i in range(count):
        n = source * 1000 + shard * 100 + i
        text = " ".join(WORDS[(n * k) % len(WORDS)] for k in range(3 + n % 9)) + f" number {n}"
        out.append({"text": text, "label": ["calm", "loud", "odd"][n % 3]})
    return out


def _write(path: Path, rows: list[dict]) -> None:
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    if path.suffix == ".zst":
        body = zstandard.ZstdCompressor().compress(body)
    elif path.suffix == ".gz":
        body = gzip.compress(body)
    path.write_bytes(body)


def _corpus(root: Path) -> tuple[Path, Path]:
    """Two sources of sharded, compressed jsonl: web/ (4 shards) and code/ (3 shards)."""
    web, code = root / "web", root / "code"
    web.mkdir(parents=True)
    code.mkdir()
    for k, suffix in enumerate([".jsonl.zst", ".jsonl.gz", ".jsonl.zst", ".jsonl"]):
        _write(web / f"web-{k}{suffix}", _rows(0, k))
    for k in range(3):
        _write(code / f"code-{k}.jsonl.gz", _rows(1, k))
    return web, code


def _mixture(web: Path, code: Path) -> list[dict]:
    return [{"path": str(web / "web-*"), "weight": 0.7}, {"path": str(code), "weight": 0.3}]


def _arrays(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix in (".npy", ".json")
            and p.name != "meta.json"}


def _meta(directory: Path) -> dict:
    meta = json.loads((directory / "meta.json").read_text())
    meta.pop("seconds")
    return meta


@pytest.mark.parametrize(("objective", "settings"), [
    ("mlm", {"seq_len": 16, "whole_word_mask": True}),  # token streams packed across shards
    ("seq_cls", {"seq_len": 32}),  # labels learnt from every train shard by the workers
])
def test_two_workers_prepare_the_same_bytes_as_one(tmp_path, objective, settings):
    web, code = _corpus(tmp_path / "corpus")
    data = {"train": _mixture(web, code), "eval_fraction": 0.1, **settings}
    prepared = {}
    for workers in (1, 2):
        (tmp_path / str(workers)).mkdir()
        recipe = make_recipe(tmp_path / str(workers), objective, data)
        prepared[workers] = prepare(recipe, log=lambda _: None, workers=workers)
    one, two = prepared[1], prepared[2]
    assert one.dir.name == two.dir.name
    assert _arrays(one.dir) == _arrays(two.dir) and _meta(one.dir) == _meta(two.dir)
    assert "eval" in one.meta["sizes"] and [s["size"] > 0 for s in one.meta["sources"]] == [True, True]
    assert not list((tmp_path / "2" / "runs" / ".cache" / "parts").iterdir())  # assembled, then removed


def test_blocks_cross_shard_boundaries_as_in_one_file(tmp_path):
    web, code = _corpus(tmp_path / "corpus")
    whole = tmp_path / "corpus" / "whole"
    whole.mkdir()
    _write(whole / "web.jsonl", [row for k in range(4) for row in _rows(0, k)])
    _write(whole / "code.jsonl", [row for k in range(3) for row in _rows(1, k)])
    blocks = {}
    for name, train in (("sharded", _mixture(web, code)),
                        ("whole", [{"path": str(whole / "web.jsonl"), "weight": 0.7},
                                   {"path": str(whole / "code.jsonl"), "weight": 0.3}])):
        (tmp_path / name).mkdir()
        recipe = make_recipe(tmp_path / name, "mlm", {"train": train, "seq_len": 16})
        got = prepare(recipe, log=lambda _: None, workers=2)
        blocks[name] = (got.split("train")["blocks"].tobytes(), got.meta["sources"])
    assert blocks["sharded"][0] == blocks["whole"][0]
    assert [s["size"] for s in blocks["sharded"][1]] == [s["size"] for s in blocks["whole"][1]]


def test_array_tasks_then_a_plain_prepare_equal_a_one_shot_prepare(tmp_path):
    web, code = _corpus(tmp_path / "corpus")
    data = {"train": _mixture(web, code), "eval": [str(tmp_path / "corpus" / "code" / "code-2.jsonl.gz")],
            "seq_len": 16}
    (tmp_path / "once").mkdir()
    once = prepare(make_recipe(tmp_path / "once", "mlm", data), log=lambda _: None)
    make_recipe(tmp_path, "mlm", data)
    recipe = str(tmp_path / "recipe.yaml")
    for task in range(3):
        done = llaunch("prepare", recipe, "--task", str(task), "--tasks", "3")
        assert done.returncode == 0, done.stderr
        assert f"task {task} of 3:" in done.stdout
    assert len(list((tmp_path / "runs" / ".cache" / "parts").iterdir())) == 8  # 7 train shards + 1 eval
    plain = llaunch("prepare", recipe)
    assert plain.returncode == 0, plain.stderr
    assert "reused 8 of 8 prepared shards: web-0.jsonl.zst, web-1.jsonl.gz" in plain.stdout
    [entry] = (tmp_path / "runs" / ".cache" / "data").iterdir()
    assert _arrays(entry) == _arrays(once.dir) and _meta(entry) == _meta(once.dir)
    assert f"prepared data found in cache: {entry}" in llaunch("prepare", recipe).stdout


def test_a_corrupt_shard_fails_its_task_with_one_line(tmp_path):
    web, code = _corpus(tmp_path / "corpus")
    bad = web / "web-2.jsonl.zst"  # shard index 2
    bad.write_bytes(bad.read_bytes()[:-20])
    make_recipe(tmp_path, "mlm", {"train": _mixture(web, code), "seq_len": 16})
    recipe = str(tmp_path / "recipe.yaml")
    failed = llaunch("prepare", recipe, "--task", "2", "--tasks", "3")
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: {bad}:") and "truncated or corrupt compressed data" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert llaunch("prepare", recipe, "--task", "1", "--tasks", "3").returncode == 0
    wrong = llaunch("prepare", recipe, "--task", "3", "--tasks", "3")
    assert wrong.returncode == 2 and "0 <= I < N" in wrong.stderr
