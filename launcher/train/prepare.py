"""In the workers: rank 0 prepares the data (or finds it in the cache); the others wait, then open the directory
rank 0 names, without hashing or reading the inputs again."""

from __future__ import annotations

import json
from pathlib import Path

from launcher.data import cache_index
from launcher.data.prepare import Prepared, open_prepared, prepare
from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.train.distributed import broadcast_text


def prepare_on_rank0(recipe: Recipe, d, log) -> Prepared:
    """A bad-data error reaches every rank, so all stop with the same one-line message."""
    found = {}
    if d.is_main:
        try:
            prepared = prepare(recipe, log=log)
            cache_index.record(recipe, prepared.dir)  # the next `llaunch run` finds it without heavy imports
            found = {"dir": str(prepared.dir)}
        except UserError as exc:
            found = {"error": str(exc)}
    found = json.loads(broadcast_text(json.dumps(found), d.device))
    if "error" in found:
        raise UserError(found["error"])
    return prepared if d.is_main else open_prepared(recipe, Path(found["dir"]))
