"""The Trainer: set-up, one step, the evaluation and save cadence, stop handling and close, each one method.

The loss of a step is the mean over every target token of the global batch (for the per-example
objectives seq_cls and qa, over every example): each micro batch's mean loss is weighted by its share
of the step's targets, counted across micro batches and ranks before the first backward. So micro
batch size, accumulation, world size and packing change the speed, never the model. (transformers'
`num_items_in_batch` does the same inside the models that honour it; BERT's and T5's heads ignore it
and take their own mean, so the weighting is done here, the same way for every model.)

Resumes by itself from the newest complete checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from launcher.data.order import micro_batch_start
from launcher.recipe.changes import training_hash
from launcher.recipe.schema import Recipe
from launcher.rundir import RunDir, write_objective
from launcher.train import checkpoint
from launcher.train.distributed import Dist, sum_all
from launcher.train.engines import build_engine
from launcher.train.evaluation.best import BestTracker, Verdict
from launcher.train.evaluation.during_training import TrainingEvaluator
from launcher.train.methods import Method
from launcher.train.metrics import Metrics
from launcher.train.mfu import run_mfu
from launcher.train.model import build_model
from launcher.train.objectives import build_objective
from launcher.train.objectives.base import to_device
from launcher.train.prepare import prepare_on_rank0
from launcher.train.progress import TrainProgress
from launcher.train.sample_log import SampleLog
from launcher.train.slow_ranks import ForwardTimer, SlowRanks
from launcher.train.step_agreement import StepAgreement
from launcher.train.stop import StopRequest
from launcher.train.sync_check import SyncCheck
from launcher.train.watchdog import Watchdog
from launcher.train.token_budget import budget_groups

SLOW_RANK = "LLAUNCH_SLOW_RANK"  # tests: "RANK:SECONDS" makes that rank sleep in every step
FAIL_AT_STEP = "LLAUNCH_FAIL_AT_STEP"  # tests: "N" or "N:RANK" raises inside step N on that rank (default 0)


class Trainer:
    def __init__(self, run: RunDir, d: Dist, log):
        self.rundir, self.d, self.log = run, d, log
        self.recipe = recipe = _recipe_for(run, d, log)
        self.stop = StopRequest(run.stop_file, d.is_main)
        torch.manual_seed(recipe.train.seed + d.rank)
        self.prepared = prepare_on_rank0(recipe, d, log)
        self.tokenizer = self.prepared.tokenizer
        if d.is_main and not run.tokenizer.exists():
            self.tokenizer.save_pretrained(run.tokenizer)
        self.objective = build_objective(recipe, self.tokenizer, self.prepared.labels)
        if d.is_main:
            self._write_objective(run.path)
        self.method = Method(recipe)
        model = build_model(recipe, self.tokenizer, self.objective.head_config(), self.method)
        self.engine = build_engine(recipe, model, self.method, d)
        self.train_data = self.prepared.split("train")
        self.order = self.prepared.train_order(recipe)
        self.state = self._resume()
        if self.state.step:
            self.objective.resumed(self.state.step)
        self._agreement = StepAgreement(self.stop, d)
        self._fail_at = _injected_failure(d.rank)
        self._slow_by = _injected_slowness(d.rank)
        self.metrics = self.progress = self.checkpointer = self.sample_log = self.watchdog = None  # opened by run()
        self.sync_check = None

    def _write_objective(self, directory) -> None:
        r = self.recipe
        write_objective(directory, r.objective, self.prepared.labels, r.data.model_dump(mode="json"),
                        {"max_new_tokens": r.eval.max_new_tokens})

    def _resume(self) -> checkpoint.TrainerState:
        """The newest complete checkpoint's state (or a fresh one), with what changed since it said in the log."""
        current = checkpoint.TrainerState(world_size=self.d.world_size, global_batch_size=self.recipe.global_batch_size,
                                          recipe_hash=training_hash(self.recipe))
        if self.d.is_main:
            checkpoint.clean_incomplete(self.rundir.checkpoints)
        dist.barrier()
        found = checkpoint.newest_intact(self.rundir.checkpoints, self.d, self.log)
        if not found:
            return current
        state = checkpoint.load(self.engine, found[1], self.d)
        self.log(f"resumed from {found[1]} (step {state.step}, {state.consumed_samples} samples consumed)")
        for note in checkpoint.resume_differences(state, current):
            self.log(f"resume: {note}")
        state.world_size, state.global_batch_size, state.recipe_hash = (
            current.world_size, current.global_batch_size, current.recipe_hash)
        return state

    # ---- the run ----
    def run(self) -> dict:
        """Train to max_steps (or an early stop, or a stop request); close whatever happens; then export."""
        ending = "failed"
        try:
            self._open()
            result = self._train()
            ending = result["status"]
        finally:
            self._close(ending)
        if result["status"] == "completed" and self.recipe.output.export:
            self.engine.export(self.rundir.export, self.tokenizer, self.d.is_main)  # collective: sharded engines gather
            if self.d.is_main:
                self._write_objective(self.rundir.export)
            result["export"] = str(self.rundir.export)
        return result

    def _open(self) -> None:
        r, d, run = self.recipe, self.d, self.rundir
        self.metrics = Metrics(run.metrics, run.tensorboard if r.logging.tensorboard else None, d.is_main)
        self.progress = TrainProgress(r.train.max_steps, self.state.step, r.logging.progress, d.is_main)
        eval_data = self.prepared.split("eval") if self.prepared.has_eval else None
        self.evaluate = TrainingEvaluator(self.engine, self.objective, eval_data, r, d, self.metrics, self.progress,
                                          BestTracker(r, self.state))
        self.checkpointer = checkpoint.Checkpointer(self.engine, run.checkpoints, r.checkpoint.keep_last,
                                                    r.checkpoint.async_, d)
        self.sample_log = SampleLog(run, d) if r.logging.sample_ids else None
        self.window = _Window(d.device)
        self.watchdog = Watchdog(r.resources.hang_timeout, run, d.rank, self.log)
        self.slow_ranks = SlowRanks(r.resources.slow_rank, d) if d.world_size > 1 else None
        self.forward_timer = ForwardTimer(d.device)
        self.sync_check = SyncCheck(d.device, self.log)

    def _train(self) -> dict:
        if self.state.step == 0 and self.recipe.eval.at_start:
            self.evaluate(0)
        self.engine.model.train()  # once: evaluation puts back the mode it found (a module walk per step was 0.6%)
        while self.state.step < self.recipe.train.max_steps:
            step = self.state.step + 1
            self.watchdog.started(step)
            with self.sync_check.step(step, self._logs_at(step)):
                stepped = self._step()
            if not stepped:
                return self._stopped()
            self._log_if_due()  # under the step's tight hang limit: a peer lost here stalls its all-reduce
            self.watchdog.finished()
            verdict = self._evaluate_if_due()
            self._save_if_due(verdict)
            if verdict.stop:
                self.progress.message(f"early stopping at step {self.state.step}: {verdict.reason}")
                break
        return self._completed()

    def _step(self) -> bool:
        """One optimizer step over the global batch; False (nothing trained) once the ranks agreed to stop."""
        s, r, d, engine = self.state, self.recipe, self.d, self.engine
        if self._agreement.stop_agreed():
            return False
        if self.method.begin_step(s.step):
            engine.trainable_changed()
        batches = self._micro_batches()
        counts = [self.objective.loss_items(batch) for batch in batches]
        self._agreement.start(sum(counts), len(batches))
        # with a token budget the ranks' micro batch counts differ: all run the most, the extra ones weigh 0
        micro_batches = self._agreement.most_micro_batches() if r.train.micro_batch_tokens else len(batches)
        step_loss = torch.zeros((), device=d.device)
        for m in range(micro_batches):
            batch, count = (batches[m], counts[m]) if m < len(batches) else (batches[-1], 0)
            with engine.accumulating(m == micro_batches - 1):
                with self.forward_timer.timing():
                    loss = self.objective.loss(engine.model, to_device(batch, d.device))
                    time.sleep(self._slow_by)
                if self._fail_at == s.step + 1:
                    raise RuntimeError(f"failure injected in step {s.step + 1} on rank {d.rank} ({FAIL_AT_STEP})")
                # this micro batch's share of the step's targets; x world: the engines average gradients over ranks
                weight = count * d.world_size / self._agreement.total()
                weighted = (loss if count else loss.nan_to_num(0.0)) * weight  # no targets: a mean of 0/0
                engine.backward(weighted)
            step_loss += weighted.detach()
        grad_norm = engine.step()
        self._count_source_tokens()
        s.step += 1
        s.consumed_samples += r.global_batch_size
        self.window.add(step_loss, grad_norm, batches)
        return True

    def _micro_batches(self) -> list[dict]:
        """This rank's micro batches of the step: micro_batch_size examples each, or with train.micro_batch_tokens
        the same examples regrouped under the token budget."""
        s, r, d = self.state, self.recipe, self.d
        micro = r.train.micro_batch_size
        starts = [micro_batch_start(s.consumed_samples, m, micro, d.world_size, d.rank) for m in range(r.grad_accum)]
        indices = [self.order.indices(start, micro) for start in starts]
        positions = [np.arange(start, start + micro) for start in starts]  # seeds for any randomness (MLM masks)
        if r.train.micro_batch_tokens:
            indices, positions = np.concatenate(indices), np.concatenate(positions)
            groups = budget_groups(self.objective.lengths(self.train_data, indices), r.train.micro_batch_tokens,
                                   r.data.packing)
            indices, positions = [indices[g] for g in groups], [positions[g] for g in groups]
        if self.sample_log:
            for ids in indices:
                self.sample_log.write(s.step + 1, ids)
        return [self.objective.train_batch(self.train_data, ids, where) for ids, where in zip(indices, positions)]

    # ---- cadence ----
    def _logs_at(self, step: int) -> bool:
        return step % self.recipe.train.log_every == 0 or step == self.recipe.train.max_steps

    def _log_if_due(self) -> None:
        s, r = self.state, self.recipe
        if not self._logs_at(s.step):
            return
        w, engine = self.window, self.engine
        forward = [0.0] * self.d.world_size  # summed: each rank's forward seconds per step at its own place
        forward[self.d.rank] = self.forward_timer.seconds() / w.steps
        loss_sum, tokens, slots, *forward = sum_all([w.loss.item() / w.steps, w.tokens, w.slots, *forward],
                                                    self.d.device)
        loss, tokens_per_s = loss_sum / self.d.world_size, tokens / max(time.time() - w.start, 1e-9)
        mfu = run_mfu(r, engine.unwrapped(), self.d.device, self.d.world_size, tokens_per_s)
        slow = self.slow_ranks.check(forward) if self.slow_ranks else []
        for rank in slow:
            self.log(f"slow rank {rank['rank']} on {rank['host']}: {rank['forward_seconds']:.3f} s of forward per step, "
                     f"the median rank {rank['median_seconds']:.3f} s (resources.slow_rank; drain the node if it stays)")
        self.metrics.log("train", s.step, loss=loss, lr=engine.lr(), grad_norm=float(w.grad_norm),
                         tokens_per_s=tokens_per_s, nonpad_fraction=tokens / max(slots, 1),
                         consumed_samples=s.consumed_samples, **({"mfu": mfu} if mfu is not None else {}),
                         **self._by_source(), **({"slow_ranks": slow} if slow else {}))
        self.progress.update(s.step, loss, engine.lr(), tokens_per_s, mfu)
        self.window = _Window(self.d.device)

    def _count_source_tokens(self) -> None:
        """Add the step's tokens to each mixture source's total. Every rank counts the whole global batch (its
        positions are known everywhere), so the total needs no collective and is checkpointed at any step."""
        s = self.state
        if self.recipe.data.weights is None:
            return
        ids = self.order.indices(s.consumed_samples, self.recipe.global_batch_size)
        lengths = np.asarray(self.objective.lengths(self.train_data, ids)).reshape(len(ids), -1).sum(axis=1)
        source = np.searchsorted(self.order.offsets, ids, side="right") - 1
        step = np.bincount(source, weights=lengths, minlength=len(self.order.sizes)).astype(np.int64)
        s.tokens_by_source = [int(a + b) for a, b in zip(s.tokens_by_source or [0] * len(step), step)]

    def _by_source(self) -> dict:
        """A weighted mixture's consumed samples (a pure function of the position) and tokens per source."""
        if self.recipe.data.weights is None:
            return {}
        names = self.prepared.source_names
        return {"consumed_by_source": dict(zip(names, self.order.consumed(self.state.consumed_samples))),
                "tokens_by_source": dict(zip(names, self.state.tokens_by_source or [0] * len(names)))}

    def _evaluate_if_due(self) -> Verdict:
        step, r = self.state.step, self.recipe
        if step == r.train.max_steps or (r.eval.every and step % r.eval.every == 0):
            with self.window.paused():
                return self.evaluate(step)
        return Verdict(False, False)

    def _save_if_due(self, verdict: Verdict) -> None:
        step, r = self.state.step, self.recipe
        with self.window.paused():
            self.checkpointer.poll()
            ending = step == r.train.max_steps or verdict.stop
            if ((ending and r.checkpoint.at_end) or verdict.new_best
                    or (r.checkpoint.every and step % r.checkpoint.every == 0)):
                self.checkpointer.save(self.state, best=verdict.new_best)

    # ---- endings ----
    def _stopped(self) -> dict:
        if self.checkpointer.last_step != self.state.step:
            self.checkpointer.save(self.state)
        self.checkpointer.wait()
        self.log(f"stopped on request at step {self.state.step}; checkpoint saved, "
                 f"`llaunch resume {self.rundir.path}` continues")
        return {"status": "interrupted", "step": self.state.step}

    def _completed(self) -> dict:
        self.checkpointer.wait()
        s = self.state
        result = {"status": "completed", "step": s.step}
        if s.best_step is not None:
            result.update(best_step=s.best_step, best_metric=self.recipe.eval.metric, best_value=s.best_value)
        if s.step < self.recipe.train.max_steps:
            result["early_stopped"] = True
        return result

    def _close(self, ending: str) -> None:
        """Every ending (completed, interrupted, failed) passes here once. After a failure nothing collective runs:
        the other ranks may be gone."""
        failed = ending == "failed"
        self._agreement.settle(failed)
        if self.checkpointer:
            if failed:
                self.checkpointer.abandon()
            else:
                self.checkpointer.wait()
        if self.metrics:
            self.metrics.close(ending)
        for part in (self.progress, self.sample_log, self.watchdog, self.sync_check):
            if part:
                part.close()


@dataclass
class _Window:
    """What the next log line reports: loss and tokens since the last one, timed without eval and saves."""

    device: torch.device
    loss: torch.Tensor = None
    steps: int = 0
    tokens: int = 0  # real tokens fed to the model
    slots: int = 0  # token slots, padding included
    grad_norm: torch.Tensor | float = 0.0
    start: float = field(default_factory=time.time)

    def __post_init__(self):
        self.loss = torch.zeros((), device=self.device)

    def add(self, step_loss: torch.Tensor, grad_norm, batches: list[dict]) -> None:
        self.loss += step_loss
        self.steps += 1
        self.grad_norm = grad_norm  # a device tensor: read only when logged
        for batch in batches:  # the host copies: no device sync
            self.slots += batch["input_ids"].numel()
            mask = batch.get("attention_mask")
            self.tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()

    @contextlib.contextmanager
    def paused(self):
        """Time spent inside does not count against tokens/s (evaluation, checkpointing)."""
        began = time.time()
        try:
            yield
        finally:
            self.start += time.time() - began


def _recipe_for(run: RunDir, d: Dist, log) -> Recipe:
    recipe = run.load_recipe()
    if d.world_size == recipe.world_size:
        return recipe
    # an elastic start (resources.min_nodes) with fewer nodes than asked: the same global batch from more
    # accumulation (an error naming the values if it cannot be kept), so the data order holds
    recipe = run.load_recipe([f"resources.nodes={d.world_size // recipe.resources.procs_per_node}"])
    log(f"{d.world_size} processes joined (resources.nodes={recipe.resources.nodes}): "
        f"grad_accum {recipe.grad_accum}, global batch {recipe.global_batch_size}")
    return recipe


def _injected_slowness(rank: int) -> float:
    """Seconds this rank sleeps in every step, from LLAUNCH_SLOW_RANK="RANK:SECONDS" (tests of slow ranks)."""
    on_rank, _, seconds = os.environ.get(SLOW_RANK, "").partition(":")
    return float(seconds) if on_rank and int(on_rank) == rank else 0.0


def _injected_failure(rank: int) -> int | None:
    """The step at which this rank raises, from LLAUNCH_FAIL_AT_STEP (tests of the failure path)."""
    value = os.environ.get(FAIL_AT_STEP)
    if not value:
        return None
    step, _, on_rank = value.partition(":")
    if int(on_rank or 0) != rank:
        return None
    return int(step)


