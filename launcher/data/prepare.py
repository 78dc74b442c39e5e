"""Data preparation (launcher side and workers alike), shard by shard, in bounded memory.

Each shard (a file or save_to_disk directory of data.train or data.eval, shards.py) is read with `datasets`,
encoded by the objective a batch of rows at a time, and written as a part (parts.py) under a key of its content
and every setting that changes its arrays; the split's memory-mappable .npy columns are then assembled from the
parts on disk and the parts removed. Shards go to `workers` processes (data.num_proc, or --workers), or to the
tasks of an array job (`prepare_slice`); a later plain prepare finds their parts and only assembles. The result
is keyed by the shards' content, the tokenizer and the settings, so a rerun (or the other ranks) skip the work.
Bad rows fail with file, line and column, before any training starts.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from transformers import PreTrainedTokenizerBase

from launcher.data.atomic import write_text_atomically
from launcher.data.cache_index import FORMAT_VERSION, cache_root
from launcher.data.fingerprint import digest, files_digest, shard_digest
from launcher.data.order import GlobalOrder
from launcher.data.parts import PartWriter, assemble
from launcher.data.rows import Rows, file_kind, read_rows
from launcher.data.shards import Shard, shards_of
from launcher.data.sources import expand
from launcher.data.store import load_split
from launcher.data.tokenizer import load_tokenizer
from launcher.errors import RunError, UserError
from launcher.recipe.schema import Recipe
from launcher.train.objectives import Objective, objective_class
from launcher.train.objectives.clm import split_name

BATCH = 1024  # rows of a shard encoded at a time: what bounds preparation's memory


@dataclass(frozen=True)
class Prepared:
    tokenizer: PreTrainedTokenizerBase
    dir: Path
    meta: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    @property
    def has_eval(self) -> bool:
        return "eval" in self.meta["columns"]

    @property
    def labels(self) -> list[str] | None:
        return self.meta.get("labels")

    def split(self, name: str) -> dict[str, Any]:
        return load_split(self.dir, name, self.meta["columns"][name])

    @property
    def source_names(self) -> list[str]:
        """The train sources of a weighted mixture (file names), or one name for plain data."""
        return [Path(source["path"]).name for source in self.meta.get("sources", [{"path": "train"}])]

    def train_order(self, recipe: Recipe) -> GlobalOrder:
        """The global sample order: one source, or each mixture source at its data.weights share."""
        sizes = [source["size"] for source in self.meta.get("sources", [])] or self.meta["sizes"]["train"]
        return GlobalOrder(sizes, recipe.train.seed, recipe.data.weights)


def prepare(recipe: Recipe, log=print, workers: int | None = None) -> Prepared:
    job = _Job(recipe)
    workers = workers or recipe.data.num_proc
    digests = _map(job, _shard_digest, job.shards, workers)
    key = digest(job.settings, [(s.split, s.source, d) for s, d in zip(job.shards, digests)],
                 recipe.data.weights is not None)
    out = job.cache / "data" / key
    if (out / "meta.json").exists():
        return Prepared(job.tokenizer, out, json.loads((out / "meta.json").read_text()), cached=True)
    started = time.time()
    job.learn_labels(workers)
    found = _map(job, _prepare_shard, job.shards, workers)
    reused = [shard.file for shard, (_, was_there) in zip(job.shards, found) if was_there]
    if reused:
        shown = ", ".join(Path(f).name for f in reused[:8]) + (", ..." if len(reused) > 8 else "")
        log(f"reused {len(reused)} of {len(job.shards)} prepared shards: {shown}")
    out.mkdir(parents=True, exist_ok=True)
    try:
        meta = job.assemble(out, [directory for directory, _ in found])
    except FileNotFoundError:
        if not (out / "meta.json").exists():
            raise
        # another prepare assembled the same parts first, and removed them: its result is this one's
        return Prepared(job.tokenizer, out, json.loads((out / "meta.json").read_text()), cached=True)
    meta["seconds"] = round(time.time() - started, 2)
    write_text_atomically(out / "meta.json", json.dumps(meta))
    for directory, _ in found:  # assembled: the parts would only double the disk used
        shutil.rmtree(directory, ignore_errors=True)
    log(f"prepared data: {_describe(meta, recipe)} in {meta['seconds']} s -> {out}")
    return Prepared(job.tokenizer, out, meta, cached=False)


def prepare_slice(recipe: Recipe, task: int, tasks: int, log=print) -> None:
    """Task `task` of an array of `tasks`: the parts of the shards whose index % tasks == task, nothing else.
    A bad shard exits 1 with its one line (the array task fails, and the training job behind it never starts)."""
    try:
        job = _Job(recipe)
        mine = [shard for shard in job.shards if shard.index % tasks == task]
        job.learn_labels(recipe.data.num_proc)
        found = _map(job, _prepare_shard, mine, recipe.data.num_proc)
    except RunError:
        raise
    except UserError as exc:
        raise RunError(str(exc)) from None
    done = sum(not was_there for _, was_there in found)
    log(f"task {task} of {tasks}: {len(mine)} of {len(job.shards)} shards ({done} prepared, {len(mine) - done} "
        f"found) -> {job.cache / 'parts'}")


def open_prepared(recipe: Recipe, directory: Path) -> Prepared:
    """Prepared data another rank made (no hashing, no reading of the inputs): the tokenizer as the objective adapts it."""
    tokenizer = objective_class(recipe.objective)(recipe, load_tokenizer(recipe, cache_root(recipe))).tokenizer
    return Prepared(tokenizer, directory, json.loads((directory / "meta.json").read_text()), cached=True)


def read_split(recipe: Recipe, objective: Objective, names: list[str], cache: Path) -> Rows:
    files = expand(names, "data")
    kind = file_kind(files, recipe.data.format)
    return read_rows(files, recipe.data.format, cache, objective.needed_columns(kind),
                     getattr(objective, "optional_columns", lambda: ())())


class _Job:
    """What every shard's preparation shares: the objective (tokenizer loaded), the shards, the settings key."""

    def __init__(self, recipe: Recipe):
        self.recipe, self.data, self.cache = recipe, recipe.data, cache_root(recipe)
        self.objective = objective_class(recipe.objective)(recipe, load_tokenizer(recipe, self.cache))
        self.tokenizer = self.objective.tokenizer
        self.shards = shards_of(recipe)
        self.kinds = {split: file_kind([s.file for s in self.shards if s.split == split], self.data.format)
                      for split in {s.split for s in self.shards}}
        settings = self.data.model_dump(exclude={"train", "eval", "num_proc", "chat_template_file", "weights"})
        template = [self.data.chat_template_file] if self.data.chat_template_file else []
        self.settings = digest(_tokenizer_fingerprint(self.tokenizer), settings, files_digest(template, self.cache),
                               recipe.train.seed, recipe.objective, FORMAT_VERSION)

    @property
    def holds_out(self) -> bool:
        return not self.data.eval and self.data.eval_fraction > 0

    def learn_labels(self, workers: int) -> None:
        """A head's label names: data.labels, else every train shard's (read once more, label columns only)."""
        if not self.objective.has_labels:
            return
        train = [shard for shard in self.shards if shard.split == "train"]
        seen = set().union(*_map(self, _seen_labels, train, workers)) if self.data.labels is None else set()
        self.objective.labels = self.objective.labels_from(seen)

    def read(self, shard: Shard, scratch: Path) -> Rows:
        kind = self.kinds[shard.split]
        return read_rows([shard.file], self.data.format, scratch, self.objective.needed_columns(kind),
                         getattr(self.objective, "optional_columns", lambda: ())())

    def splits(self, shard: Shard, rows: int) -> list[tuple[str, np.ndarray]]:
        """(split, row numbers) that a shard's rows go to: data.eval_fraction holds some of a train shard out, a
        share rounded at random (the first shard holds at least one) and chosen by a generator seeded by (seed,
        shard index): a pure function of the seed and the row's place, so it needs no other shard."""
        everything = np.arange(rows)
        if shard.split == "eval" or not self.holds_out:
            return [(shard.split, everything)]
        rng = np.random.default_rng([self.recipe.train.seed, shard.index])
        count = min(rows, max(int(shard.index == 0), int(rows * self.data.eval_fraction + rng.random())))
        held = np.zeros(rows, dtype=bool)
        held[rng.permutation(rows)[:count]] = True
        return [("train", everything[~held]), ("eval", everything[held])]

    def part_key(self, shard: Shard) -> str:
        place = shard.index if self.holds_out and shard.split == "train" else None
        return digest(self.settings, self.objective.labels, shard_digest(shard.file, self.cache), shard.split,
                      self.kinds[shard.split], place)

    def assemble(self, out: Path, parts: list[Path]) -> dict[str, Any]:
        data, objective = self.data, self.objective
        meta: dict[str, Any] = {"objective": self.recipe.objective, "seq_len": data.seq_len,
                                "vocab": len(self.tokenizer), "labels": objective.labels, "columns": {}, "sizes": {}}
        descriptions = [json.loads((directory / "part.json").read_text()) for directory in parts]
        for split in ("train", "eval"):
            mixture = split == "train" and data.weights is not None
            entries = [(directory, description[split], shard.source if mixture else 0)
                       for shard, directory, description in zip(self.shards, parts, descriptions) if split in description]
            if not entries:
                continue
            kinds, counts = assemble(out, split, entries, len(data.train) if mixture else 1, data.seq_len,
                                     split_name(split))
            for source, count in enumerate(counts):
                if count == 0 and split == "train":
                    first = next(s.file for s in self.shards if s.split == "train" and (s.source == source or not mixture))
                    raise UserError(f"{first}: no training rows left in this data.train source")
            if mixture:
                meta["sources"] = [{"path": path, "size": count} for path, count in zip(data.train, counts)]
            meta["columns"][split] = kinds
            meta["sizes"][split] = objective.size(load_split(out, split, kinds))
        return meta


def _shard_digest(job: _Job, shard: Shard) -> str:
    return shard_digest(shard.file, job.cache)


def _seen_labels(job: _Job, shard: Shard) -> set[str]:
    with tempfile.TemporaryDirectory(dir=_scratch_root(job)) as scratch:
        rows = job.read(shard, Path(scratch))
        [(_, train), *_] = job.splits(shard, len(rows))
        return set().union(*(job.objective.seen_labels(rows.subset(train[k:k + BATCH]))
                             for k in range(0, len(train), BATCH)))


def _prepare_shard(job: _Job, shard: Shard) -> tuple[Path, bool]:
    """The shard's part directory, and whether it was there already (an array task, an interrupted run)."""
    directory = job.cache / "parts" / job.part_key(shard)
    if (directory / "part.json").is_file():
        return directory, True
    tmp = Path(tempfile.mkdtemp(dir=_scratch_root(job), prefix=f".{directory.name}-"))
    try:
        description = {}
        with tempfile.TemporaryDirectory(dir=tmp) as scratch:  # datasets' arrow copy of this shard only
            rows = job.read(shard, Path(scratch))
            for split, picked in job.splits(shard, len(rows)):
                writer = PartWriter(tmp, split, job.objective.streams, job.objective.row_numbers)
                for k in range(0, len(picked), BATCH):
                    batch = picked[k:k + BATCH]
                    writer.append(job.objective.encode_part(rows.subset(batch), split), len(batch))
                description[split] = {"columns": writer.columns, "rows": writer.rows}
        (tmp / "part.json").write_text(json.dumps(description))
        try:
            tmp.rename(directory)  # atomic: a part is whole or absent
        except OSError:
            if not (directory / "part.json").is_file():
                raise  # not another task's identical part: a real failure
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory, False


def _scratch_root(job: _Job) -> Path:
    root = job.cache / "parts"
    root.mkdir(parents=True, exist_ok=True)
    return root


_JOB: _Job | None = None  # the job a forked pool worker inherits


def _map(job: _Job, function: Callable[[_Job, Shard], Any], shards: list[Shard], workers: int) -> list[Any]:
    """function(job, shard) for every shard, in `workers` processes (forked: each inherits the loaded tokenizer)."""
    if workers <= 1 or len(shards) <= 1:
        return [function(job, shard) for shard in shards]
    import datasets  # noqa: F401 (imported once here, not again in every forked worker)

    global _JOB
    _JOB = job
    with multiprocessing.get_context("fork").Pool(min(workers, len(shards)), initializer=_one_core) as pool:
        return pool.map(_call, [(function, shard) for shard in shards], chunksize=1)


def _call(work: tuple[Callable[[_Job, Shard], Any], Shard]) -> Any:
    function, shard = work
    return function(_JOB, shard)


def _one_core() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # N workers are N cores: no tokenizer thread pool in each


def _describe(meta: dict[str, Any], recipe: Recipe) -> str:
    sizes = meta["sizes"]
    if recipe.objective in ("clm", "mlm"):
        text = f"{sizes['train']} train blocks of {recipe.data.seq_len} tokens"
        return text + (f", {sizes['eval']} eval blocks" if "eval" in sizes else "")
    unit = "windows" if recipe.objective == "qa" else "examples"
    text = f"{sizes['train']} train {unit}" + (f", {sizes['eval']} eval {unit}" if "eval" in sizes else "")
    labels = meta.get("labels")
    if labels:
        shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
        text += f" ({len(labels)} labels: {shown})"
    return text


def _tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    return digest(type(tokenizer).__name__, vocab, tokenizer.eos_token_id, getattr(tokenizer, "chat_template", None))
