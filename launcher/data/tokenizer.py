"""Tokenizer: load one from a directory, or train a sentencepiece BPE/unigram on the recipe's corpus."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from transformers import AutoTokenizer, LlamaTokenizer, PreTrainedTokenizerBase

from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.data.fingerprint import digest, files_digest
from launcher.data.sources import expand


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
    key = digest(files_digest(files, cache_dir), spec.vocab_size, spec.model_type, "sp-v1")
    out = cache_dir / "tokenizers" / key
    if (out / "tokenizer.model").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out.parent, prefix=".tmp-")
    try:
        try:
            spm.SentencePieceTrainer.train(
                input=",".join(files), model_prefix=f"{tmp}/tokenizer", vocab_size=spec.vocab_size,
                model_type=spec.model_type, unk_id=0, bos_id=1, eos_id=2, pad_id=3, num_threads=1,
                character_coverage=1.0, input_sentence_size=2_000_000, shuffle_input_sentence=True,
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


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
