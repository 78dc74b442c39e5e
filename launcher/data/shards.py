"""The shards of a recipe: each file (or save_to_disk directory) of data.train, then of data.eval, in a fixed order.

A shard is the unit of preparation: it is read, encoded and written as a part of its own, by any worker
process or SLURM array task (`llaunch prepare RECIPE --task I --tasks N` takes the shards whose index % N == I).
Nothing here imports torch or transformers: a job script sizes its array with `train_eval_shards` at submit time.
"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.data.sources import expand
from launcher.recipe.schema import Recipe


@dataclass(frozen=True)
class Shard:
    index: int  # in the recipe's train + eval shards
    file: str
    split: str  # "train" or "eval"
    source: int  # the data.train name it came from (a weighted mixture's source); 0 for eval


def shards_of(recipe: Recipe) -> list[Shard]:
    named = [(file, "train", source) for source, name in enumerate(recipe.data.train)
             for file in expand([name], "data.train")]
    named += [(file, "eval", 0) for file in expand(recipe.data.eval, "data.eval")]
    return [Shard(index, file, split, source) for index, (file, split, source) in enumerate(named)]


def train_eval_shards(recipe: Recipe) -> list[str]:
    """The files of every shard in index order: an array of N tasks prepares those whose index % N == task."""
    return [shard.file for shard in shards_of(recipe)]
