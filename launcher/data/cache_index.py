"""Which prepared-data cache entry a recipe maps to, known without torch or transformers.

The data cache itself is keyed by what the tokenized arrays depend on, the loaded tokenizer's
vocabulary among them, so computing that key needs transformers (seconds of imports). This index
maps a key of the *sources* (data files, tokenizer files or tokenizer training settings, every data
setting) to that entry, so `llaunch run` on prepared data starts the workers without those imports.
A missing or stale entry only means the full preparation runs, as without the index.
"""

from __future__ import annotations

import json
from pathlib import Path

from launcher.recipe.schema import Recipe
from launcher.data.atomic import write_text_atomically
from launcher.data.fingerprint import digest, files_digest

# of the prepared arrays; a change gives every recipe a new cache entry (v3: sft replies end as the template
# ends the turn, with one EOS; v4: prepared shard by shard, eval_fraction held out per shard)
FORMAT_VERSION = "columns-v4"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.txt", "vocab.json",
                   "merges.txt", "chat_template.jinja", "chat_template.json")


def cache_root(recipe: Recipe) -> Path:
    return Path(recipe.output.cache_dir or Path(recipe.output.dir) / ".cache").resolve()


def lookup(recipe: Recipe) -> Path | None:
    """The prepared data dir for this recipe, if a complete one is recorded."""
    try:
        entry = json.loads(_index_file(recipe).read_text())
    except (OSError, ValueError):
        return None
    found = Path(entry.get("data", ""))
    return found if (found / "meta.json").is_file() else None


def record(recipe: Recipe, data_dir: Path) -> None:
    path = _index_file(recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps({"data": str(data_dir)}))


def _index_file(recipe: Recipe) -> Path:
    return cache_root(recipe) / "index" / f"{_sources_key(recipe)}.json"


def _sources_key(recipe: Recipe) -> str:
    """Reads no data bytes once the inputs were fingerprinted (fingerprint.py keeps each file's digest by its stamp)."""
    data, tokenizer, cache = recipe.data, recipe.tokenizer, cache_root(recipe)
    if tokenizer.train is not None:
        source = ("train", tokenizer.train.model_dump(mode="json", exclude={"files"}),
                  files_digest(tokenizer.train.files or data.train, cache))
    else:
        directory = Path(tokenizer.path or recipe.model.path)
        files = [str(directory / name) for name in TOKENIZER_FILES if (directory / name).is_file()]
        source = ("dir", [Path(f).name for f in files], files_digest(files, cache))
    template = [data.chat_template_file] if data.chat_template_file else []
    settings = data.model_dump(mode="json", exclude={"train", "eval", "num_proc", "chat_template_file", "weights"})
    return digest(files_digest(data.train, cache), files_digest(data.eval, cache), files_digest(template, cache),
                  source, settings, data.weights is not None,
                  recipe.train.seed, recipe.objective, recipe.model.trust_remote_code, FORMAT_VERSION)
