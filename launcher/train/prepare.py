"""Data preparation: read local text/jsonl with `datasets`, tokenize, pack into fixed-length blocks.

The result is cached as memory-mappable .npy files under a key made of the files' content, the
tokenizer and the settings, so a rerun (or the other ranks) skip the work.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.train.hashing import digest, files_digest
from launcher.train.tokenizer import load_tokenizer

FORMAT_VERSION = "packed-v1"


@dataclass(frozen=True)
class Prepared:
    tokenizer: PreTrainedTokenizerBase
    train: Path
    eval: Path | None
    cached: bool


def cache_root(recipe: Recipe) -> Path:
    return Path(recipe.output.cache_dir or Path(recipe.output.dir) / ".cache").resolve()


def prepare(recipe: Recipe, log=print) -> Prepared:
    cache = cache_root(recipe)
    tokenizer = load_tokenizer(recipe, cache)
    data = recipe.data
    key = digest(
        files_digest(data.train + data.eval), _tokenizer_fingerprint(tokenizer), data.seq_len, data.format,
        data.text_field, data.eval_fraction, recipe.train.seed, recipe.objective, FORMAT_VERSION,
    )
    out = cache / "data" / key
    wants_eval = bool(data.eval) or data.eval_fraction > 0
    if (out / "meta.json").exists():
        return Prepared(tokenizer, out / "train.npy", out / "eval.npy" if wants_eval else None, cached=True)
    started = time.time()
    train_docs = _read_docs(recipe, data.train, cache)
    if data.eval:
        eval_docs = _read_docs(recipe, data.eval, cache)
    elif data.eval_fraction > 0:
        split = train_docs.train_test_split(test_size=data.eval_fraction, seed=recipe.train.seed)
        train_docs, eval_docs = split["train"], split["test"]
    else:
        eval_docs = None
    out.mkdir(parents=True, exist_ok=True)
    train_blocks = _pack(_tokenize(train_docs, tokenizer, data.num_proc), tokenizer, data.seq_len, "data.train")
    _save(out / "train.npy", train_blocks)
    meta = {"train_blocks": len(train_blocks), "seq_len": data.seq_len, "vocab": len(tokenizer)}
    if eval_docs is not None:
        eval_blocks = _pack(_tokenize(eval_docs, tokenizer, data.num_proc), tokenizer, data.seq_len, "eval data")
        _save(out / "eval.npy", eval_blocks)
        meta["eval_blocks"] = len(eval_blocks)
    meta["seconds"] = round(time.time() - started, 2)
    (out / ".meta.tmp").write_text(json.dumps(meta))
    os.replace(out / ".meta.tmp", out / "meta.json")
    log(f"prepared data: {meta['train_blocks']} train blocks of {data.seq_len} tokens"
        f"{', %d eval blocks' % meta['eval_blocks'] if 'eval_blocks' in meta else ''} in {meta['seconds']} s -> {out}")
    return Prepared(tokenizer, out / "train.npy", out / "eval.npy" if eval_docs is not None else None, cached=False)


def _read_docs(recipe: Recipe, files: list[str], cache: Path):
    import datasets

    datasets.disable_progress_bars()
    fmt = recipe.data.format
    kinds = {("json" if (fmt == "jsonl" or (fmt == "auto" and f.endswith((".jsonl", ".json")))) else "text") for f in files}
    if len(kinds) > 1:
        raise UserError(f"data: mixes text and jsonl files ({', '.join(files)}); use one format per split")
    kind = kinds.pop()
    try:
        docs = datasets.load_dataset(kind, data_files=files, split="train", cache_dir=str(cache / "hf-datasets"))
    except Exception as exc:  # datasets wraps parser errors in many types; all mean a bad file here
        raise UserError(f"data {', '.join(files)}: cannot read as {kind}: {str(exc).splitlines()[0]}") from None
    field = "text" if kind == "text" else recipe.data.text_field
    if field not in docs.column_names:
        raise UserError(
            f"data {', '.join(files)}: rows have no '{field}' field (columns: {', '.join(docs.column_names)});"
            " set data.text_field"
        )
    docs = docs.select_columns([field])
    return docs if field == "text" else docs.rename_column(field, "text")


def _tokenize(docs, tokenizer: PreTrainedTokenizerBase, num_proc: int):
    eos = tokenizer.eos_token_id

    def encode(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        return {"ids": [row + [eos] for row, text in zip(ids, batch["text"]) if text and text.strip()]}

    return docs.map(encode, batched=True, num_proc=num_proc if num_proc > 1 else None, remove_columns=["text"])


def _pack(docs, tokenizer: PreTrainedTokenizerBase, seq_len: int, what: str) -> np.ndarray:
    """Concatenate documents (EOS between them) and cut into full blocks; the remainder is dropped."""
    flat = np.fromiter((token for row in docs["ids"] for token in row), dtype=np.int32)
    blocks = len(flat) // seq_len
    if blocks == 0:
        raise UserError(f"{what}: {len(flat)} tokens, fewer than one sequence of data.seq_len={seq_len}")
    return flat[: blocks * seq_len].reshape(blocks, seq_len)


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    return digest(type(tokenizer).__name__, vocab, tokenizer.eos_token_id)
