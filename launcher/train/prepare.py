"""In the workers: rank 0 prepares the data (or finds it in the cache); the others wait, then open the same cache."""

from __future__ import annotations

from launcher.data import cache_index
from launcher.data.prepare import Prepared, prepare
from launcher.errors import UserError
from launcher.recipe.schema import Recipe
from launcher.train.distributed import broadcast_text


def prepare_on_rank0(recipe: Recipe, d, log) -> Prepared:
    """A bad-data error reaches every rank, so all stop with the same one-line message."""
    error = None
    if d.is_main:
        try:
            prepared = prepare(recipe, log=log)
        except UserError as exc:
            error = str(exc)
    error = broadcast_text(error, d.device)
    if error:
        raise UserError(error)
    if d.is_main:
        cache_index.record(recipe, prepared.dir)  # the next `llaunch run` finds it without heavy imports
    else:
        prepared = prepare(recipe, log=lambda _: None)
    return prepared
