"""Checkpoints: sharded model/optimizer state (through the engine) + trainer state + per-rank RNG.

A checkpoint counts only once every rank has written and rank 0 has put the COMPLETE marker in
place by atomic rename. The marker records the size and xxh3-64 hash of every file (launcher/checksums.py):
each rank hashes what it wrote right after writing it, and rank 0 gathers them into the marker. Resume
takes the newest complete one whose files read back as written (each rank checks a share), falling back
past a damaged one; incomplete ones are removed. With `checkpoint.async`, the state is staged in memory
and written (then hashed) by background threads; the marker follows once every rank's write has
finished, so training never waits on the disk.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from launcher.checkpoints import (BEST, MARKER, best_checkpoint, complete_checkpoints, incomplete_checkpoints,
                                  latest_complete, step_dir)
from launcher.checksums import Manifest, check, content_files, hash_bytes, hash_files, marker_text, own_files, recorded
from launcher.errors import RunError
from launcher.train.distributed import Dist
from launcher.train.engines.base import Engine

STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    step: int = 0
    consumed_samples: int = 0
    world_size: int = 1
    global_batch_size: int = 0
    recipe_hash: str = ""
    best_step: int | None = None  # eval.metric's best so far (its checkpoint is kept and marked BEST)
    best_value: float | None = None
    stop_value: float | None = None  # early_stopping.metric's best so far
    evals_without_improvement: int = 0
    tokens_by_source: list[int] | None = None  # a weighted mixture's tokens read from each source, all ranks


class Checkpointer:
    def __init__(self, engine: Engine, root: Path, keep_last: int, use_async: bool, d: Dist):
        self.engine, self.root, self.keep_last, self.d = engine, root, keep_last, d
        self.use_async = use_async
        # the background writer gets its own gloo group so it never interleaves with training collectives;
        # asking whether every rank's write is done needs a third one: a collective on the writer's group
        # from this thread, while the writer's are in flight, can pair up differently on each rank (a hang)
        self._group = dist.new_group(backend="gloo") if self.use_async else None
        self._control = dist.new_group(backend="gloo") if self.use_async else None
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-crc") if self.use_async else None
        self._pending = None  # (future of this rank's checksums, path, payload) of an async save not yet marked complete
        self.last_step = -1

    def save(self, state: TrainerState, best: bool = False) -> None:
        """`best`: mark this checkpoint BEST once complete (keep_last rotation never removes it)."""
        self.wait()
        path = step_dir(self.root, state.step)
        if self.d.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            if path.exists():  # a leftover from a run killed while saving this very step
                shutil.rmtree(path)
        dist.barrier()
        path.mkdir(parents=True, exist_ok=True)
        payload = {"trainer": asdict(state), "scheduler": self.engine.scheduler.state_dict(), "best": best}
        try:
            if self.use_async:
                written = self.engine.async_save(path, self._group)
            else:
                self.engine.save(path)
            torch.save(_rng_state(), path / f"rng-rank{self.d.rank}.pt")
            own = None if self.use_async else own_files(path, self.d.rank)
        except BaseException as exc:  # noqa: BLE001 - DCP raises CheckpointException, a BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self._fail(path, exc)
        self.last_step = state.step
        if self.use_async:
            self._pending = (self._hasher.submit(_hash_when_written, written, path, self.d.rank), path, payload)
        else:
            self._finish(path, payload, own)

    def poll(self) -> None:
        """Called at every step boundary: marks an async save complete once every rank's write is done."""
        if self._pending is None:
            return
        done = torch.tensor([1 if self._pending[0].done() else 0])
        dist.all_reduce(done, op=dist.ReduceOp.MIN, group=self._control)
        if done.item():
            self.wait()

    def wait(self) -> None:
        if self._pending is None:
            return
        future, path, payload = self._pending
        self._pending = None
        try:
            own = future.result()
        except BaseException as exc:  # noqa: BLE001 - DCP raises CheckpointException, a BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self._fail(path, exc)
        self._finish(path, payload, own)

    def abandon(self) -> None:
        """After a failure: no collective (the other ranks may be gone), no marker; resume ignores the
        unfinished checkpoint and removes it."""
        self._pending = None

    def _finish(self, path: Path, payload: dict, own: Manifest) -> None:
        gathered: list[Manifest | None] = [None] * dist.get_world_size(self._group)
        dist.all_gather_object(gathered, own, group=self._group)  # also the barrier: every rank has written
        if self.d.is_main:
            files = {name: entry for part in gathered for name, entry in part.items()}
            state = json.dumps(payload, indent=1).encode()
            (path / STATE_FILE).write_bytes(state)
            files[STATE_FILE] = [len(state), hash_bytes(state)]
            files.update(hash_files(path, [n for n in content_files(path) if n not in files]))  # none expected
            tmp = path / f".{MARKER}.tmp"
            tmp.write_text(marker_text(payload["trainer"]["step"], files))
            os.replace(tmp, path / MARKER)
            if payload.get("best"):
                _mark_best(self.root, path)
            _rotate(self.root, self.keep_last)

    def _fail(self, path: Path, exc: BaseException) -> None:
        cause = _describe_failure(path, exc)
        if self.d.is_main:
            shutil.rmtree(path, ignore_errors=True)
        previous = latest_complete(self.root)
        kept = f"; the newest complete checkpoint {previous[1]} is intact" if previous else ""
        raise RunError(f"checkpoint {path}: save failed: {cause}{kept}") from None


def newest_intact(root: Path, d: Dist, log) -> tuple[int, Path] | None:
    """Collective: the newest complete checkpoint whose files read back as written (each rank reads a share
    of them); one log line for each damaged one passed over."""
    for step, path in reversed(complete_checkpoints(root)):
        names = sorted(recorded(path) or {})
        problems: list[str | None] = [None] * d.world_size
        dist.all_gather_object(problems, check(path, names[d.rank::d.world_size]))
        problem = next((p for p in problems if p), None)
        if problem is None:
            return step, path
        log(f"checkpoint {path} is damaged ({problem}): skipped, resuming from the complete one before it")
    return None


def _hash_when_written(written: Future, path: Path, rank: int) -> Manifest:
    written.result()
    return own_files(path, rank)


def load(engine: Engine, path: Path, d: Dist) -> TrainerState:
    engine.load(path)
    payload = json.loads((path / STATE_FILE).read_text())
    engine.scheduler.load_state_dict(payload["scheduler"])
    rng_file = path / f"rng-rank{d.rank}.pt"
    if rng_file.exists():
        _set_rng_state(torch.load(rng_file, weights_only=True))
    return TrainerState(**payload["trainer"])


def resume_differences(saved: TrainerState, current: TrainerState) -> list[str]:
    """What differs between the run a checkpoint was written by and the one resuming it, in words.

    A different world size is supported (checkpoints reshard; the data position is a sample count); a
    different global batch or training recipe can only come from `llaunch resume --force`."""
    notes = []
    if saved.world_size != current.world_size:
        notes.append(f"{current.world_size} processes; the checkpoint was written by {saved.world_size} "
                     f"(resharded; the sample order continues at sample {saved.consumed_samples})")
    if saved.global_batch_size != current.global_batch_size:
        notes.append(f"global batch {current.global_batch_size}; the checkpoint's run had {saved.global_batch_size} "
                     f"(the sample order continues at sample {saved.consumed_samples})")
    if saved.recipe_hash and saved.recipe_hash != current.recipe_hash:
        notes.append(f"the training settings differ from the checkpoint's (recipe hash {saved.recipe_hash} -> "
                     f"{current.recipe_hash}: resumed with --force)")
    return notes


def clean_incomplete(root: Path) -> None:
    for path in incomplete_checkpoints(root):
        shutil.rmtree(path, ignore_errors=True)


def _mark_best(root: Path, path: Path) -> None:
    """Mark the new best first, then unmark the old one: there is always a marked checkpoint."""
    tmp = path / f".{BEST}.tmp"
    tmp.write_text(f"{path.name}\n")
    os.replace(tmp, path / BEST)
    for _, other in complete_checkpoints(root):
        if other != path:
            (other / BEST).unlink(missing_ok=True)


def _rotate(root: Path, keep_last: int) -> None:
    complete = complete_checkpoints(root)
    best = best_checkpoint(root)
    for _, path in complete[:-keep_last]:
        if best is not None and path == best[1]:
            continue
        (path / MARKER).unlink()  # unmark first: a half-deleted checkpoint is never taken as complete
        shutil.rmtree(path, ignore_errors=True)


def _describe_failure(path: Path, exc: BaseException) -> str:
    """DCP reports a full disk as an opaque zip-writer error: name the real cause where we can."""
    probe = path if path.exists() else path.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        free = None
    if free is not None and free < 1 << 20:
        return f"no space left on device ({free} bytes free on {probe})"
    failures = getattr(exc, "failures", None)
    if failures:
        first = next(iter(failures.values()))
        exc = first[0] if isinstance(first, tuple) else first
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename or path})"
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
