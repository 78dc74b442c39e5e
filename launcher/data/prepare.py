"""Data preparation (launcher side and workers alike): read the split files with `datasets`, let the objective tokenize them, cache the result.

The result is memory-mappable .npy columns under a key made of the files' content, the tokenizer and
every setting that changes the arrays, so a rerun (or the other ranks) skip the work. Bad rows fail
here, with file, line and column, before any training starts.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from launcher.errors import UserError
from launcher.data.cache_index import FORMAT_VERSION, cache_root
from launcher.data.fingerprint import digest, files_digest
from launcher.data.rows import Rows, file_kind, read_rows
from launcher.data.order import GlobalOrder
from launcher.data.sources import expand
from launcher.data.store import concat_columns, load_split, save_split
from launcher.data.tokenizer import load_tokenizer
from launcher.recipe.schema import Recipe
from launcher.train.objectives import Objective, objective_class


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


def prepare(recipe: Recipe, log=print) -> Prepared:
    cache = cache_root(recipe)
    objective = objective_class(recipe.objective)(recipe, load_tokenizer(recipe, cache))
    tokenizer, data = objective.tokenizer, recipe.data
    settings = data.model_dump(exclude={"train", "eval", "num_proc", "chat_template_file", "weights"})
    template = [data.chat_template_file] if data.chat_template_file else []
    key = digest(files_digest(data.train), files_digest(data.eval), files_digest(template),
                 _tokenizer_fingerprint(tokenizer), settings, data.weights is not None, recipe.train.seed,
                 recipe.objective, FORMAT_VERSION)
    out = cache / "data" / key
    if (out / "meta.json").exists():
        return Prepared(tokenizer, out, json.loads((out / "meta.json").read_text()), cached=True)
    started = time.time()
    train_rows, eval_rows = _read_splits(recipe, objective, cache)
    objective.labels = objective.infer_labels(train_rows)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"objective": recipe.objective, "seq_len": data.seq_len, "vocab": len(tokenizer),
                            "labels": objective.labels, "columns": {}, "sizes": {}}
    for split, rows in (("train", train_rows), ("eval", eval_rows)):
        if rows is None:
            continue
        if split == "train" and data.weights is not None:
            shards = [len(expand([name], "data.train")) for name in data.train]
            parts = [objective.encode(part, split) for part in _by_source(rows, shards)]
            meta["sources"] = [{"path": path, "size": objective.size(part)} for path, part in zip(data.train, parts)]
            columns = concat_columns(parts)
        else:
            columns = objective.encode(rows, split)
        meta["columns"][split] = save_split(out, split, columns)
        meta["sizes"][split] = objective.size(columns)
    meta["seconds"] = round(time.time() - started, 2)
    (out / ".meta.tmp").write_text(json.dumps(meta))
    os.replace(out / ".meta.tmp", out / "meta.json")
    log(f"prepared data: {_describe(meta, recipe)} in {meta['seconds']} s -> {out}")
    return Prepared(tokenizer, out, meta, cached=False)


def read_split(recipe: Recipe, objective: Objective, names: list[str], cache: Path) -> Rows:
    files = expand(names, "data")
    kind = file_kind(files, recipe.data.format)
    return read_rows(files, recipe.data.format, cache, objective.needed_columns(kind),
                     getattr(objective, "optional_columns", lambda: ())())


def _read_splits(recipe: Recipe, objective: Objective, cache: Path) -> tuple[Rows, Rows | None]:
    data = recipe.data
    train = read_split(recipe, objective, data.train, cache)
    if data.eval:
        return train, read_split(recipe, objective, data.eval, cache)
    if data.eval_fraction <= 0:
        return train, None
    order = np.random.default_rng(recipe.train.seed).permutation(len(train))
    held = max(1, int(round(len(train) * data.eval_fraction)))
    return train.subset(np.sort(order[held:])), train.subset(np.sort(order[:held]))


def _by_source(rows: Rows, shards: list[int]) -> list[Rows]:
    """A weighted mixture's train rows split by source (`shards[s]` files each), held-out rows left out."""
    first_file = np.cumsum([0] + shards[:-1])
    starts = np.array([start for _, start in rows.sources])[first_file]
    origin = np.asarray(rows.origin if rows.origin is not None else np.arange(len(rows)))
    source = np.searchsorted(starts, origin, side="right") - 1
    parts = []
    for s, file in enumerate(first_file):
        picked = np.flatnonzero(source == s)
        if len(picked) == 0:
            raise UserError(f"{rows.sources[file][0]}: no training rows left in this data.train source")
        parts.append(rows.subset(picked))
    return parts


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
