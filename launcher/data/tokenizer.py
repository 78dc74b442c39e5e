"""Tokenizer: load one from a directory, or train a sentencepiece BPE/unigram on the recipe's corpus."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from transformers import AutoTokenizer, LlamaTokenizer, PreTrainedTokenizerBase

from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.data.fingerprint import digest, files_digest
from launcher.data.rows import not_json
from launcher.data.sources import compressed, data_suffix, expand, open_binary

MAX_SENTENCES = 2_000_000  # sentencepiece's own input_sentence_size: a sample is enough to learn the pieces


def load_tokenizer(recipe: Recipe, cache_dir: Path) -> PreTrainedTokenizerBase:
    """The recipe's tokenizer; trained ones are cached by corpus content and settings."""
    if recipe.tokenizer.train is not None:
        tokenizer = LlamaTokenizer.from_pretrained(_trained_dir(recipe, cache_dir), pad_token="<pad>")
    else:
        path = recipe.tokenizer.path or recipe.model.path
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=recipe.model.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise UserError(f"tokenizer {path}: cannot load a tokenizer from it ({_first_line(exc)})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _trained_dir(recipe: Recipe, cache_dir: Path) -> Path:
    import sentencepiece as spm  # imported here: only recipes that train a tokenizer need it

    spec = recipe.tokenizer.train
    files = expand(spec.files or recipe.data.train, "tokenizer.train.files")
    plain = all(data_suffix(f) == ".txt" and not compressed(f) for f in files)  # sentencepiece reads those itself
    key = digest(files_digest(files, cache_dir), spec.vocab_size, spec.model_type, "sp-v1" if plain else "sp-v2-text")
    out = cache_dir / "tokenizers" / key
    if (out / "tokenizer.model").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out.parent, prefix=".tmp-")
    try:
        try:
            corpus = {"input": ",".join(files)} if plain else {"sentence_iterator": _sentences(files)}
            spm.SentencePieceTrainer.train(
                **corpus, model_prefix=f"{tmp}/tokenizer", vocab_size=spec.vocab_size,
                model_type=spec.model_type, unk_id=0, bos_id=1, eos_id=2, pad_id=3, num_threads=1,
                character_coverage=1.0, input_sentence_size=MAX_SENTENCES, shuffle_input_sentence=True,
                minloglevel=2,
            )
        except RuntimeError as exc:
            raise UserError(f"tokenizer.train: sentencepiece failed: {_first_line(exc)}") from None
        Path(f"{tmp}/tokenizer.vocab").unlink()
        Path(tmp).rename(out)
    except OSError:
        if not (out / "tokenizer.model").exists():  # another process won the race: fine
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _sentences(files: list[str]):
    """The text sentencepiece learns from in files it cannot read itself: .gz/.zst decompressed, and of JSON rows
    every string value (text, chat contents, answers), not the JSON around them; the first MAX_SENTENCES."""
    count = 0
    for file in files:
        kind = data_suffix(file)
        if kind not in (".txt", ".jsonl", ".json"):
            raise UserError(f"tokenizer.train.files: {file}: a tokenizer trains on .txt or .jsonl files (also .gz/.zst)")
        with open_binary(file) as handle:
            for number, line in enumerate(handle, 1):
                text = line.decode("utf-8", errors="replace").strip()
                for sentence in _strings(_row(text, file, number)) if kind != ".txt" and text else [text]:
                    if sentence.strip():
                        yield sentence
                        count += 1
                        if count == MAX_SENTENCES:
                            return


def _row(text: str, file: str, number: int):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(not_json(file, number, err)) from None


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
