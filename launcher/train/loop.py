"""The train loop: the same for every engine. Resumes by itself from the newest complete checkpoint."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from launcher.checkpoints import latest_complete
from launcher.errors import UserError
from launcher.recipe.changes import training_hash
from launcher.recipe.schema import Recipe
from launcher.rundir import RunDir, write_text_atomic
from launcher.train import checkpoint
from launcher.train.distributed import Dist, broadcast_text, sum_all
from launcher.train.engines import build_engine
from launcher.train.evaluation.best import BestTracker
from launcher.train.evaluation.during_training import TrainingEvaluator
from launcher.train.metrics import Metrics
from launcher.train.model import build_model
from launcher.train.objectives import build_objective
from launcher.train.objectives.base import to_device
from launcher.train.prepare import prepare
from launcher.train.progress import TrainProgress
from launcher.train.sampling import GlobalOrder, micro_batch_start


OBJECTIVE_FILE = "objective.json"


class StopRequest:
    """SIGTERM/SIGINT/SIGUSR2 or the run's STOP file: checkpoint at a step boundary, exit cleanly.

    Only rank 0 looks at the file. The ranks agree without a blocking collective per step: each step
    boundary starts an all-reduce of this rank's flag and reads the one started at the boundary before
    (long finished: that step's gradient all-reduce came after it), so all stop at the same step, one
    after the request. A blocking vote per step was 4% of the quickstart's step time (bench/step_profile.py).
    """

    def __init__(self, stop_file: Path, is_main: bool, device: torch.device):
        self.signalled = False
        self._file = stop_file if is_main else None
        self._device = device
        self._vote: tuple[torch.Tensor, dist.Work] | None = None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signalled = True

    @property
    def requested(self) -> bool:
        return self.signalled or (self._file is not None and self._file.exists())

    def agreed(self) -> bool:
        """Collective, once per step: whether any rank had a request at the previous step boundary."""
        previous = self._vote
        flag = torch.tensor([1 if self.requested else 0], device=self._device)
        self._vote = (flag, dist.all_reduce(flag, op=dist.ReduceOp.MAX, async_op=True))
        if previous is None:
            return False
        previous[1].wait()
        return bool(previous[0].item())

    def settle(self) -> None:
        """Finish the vote in flight before the collectives that follow the loop."""
        if self._vote is not None:
            self._vote[1].wait()
            self._vote = None


def run_training(run: RunDir, d: Dist, log) -> dict:
    recipe = run.load_recipe()
    if d.world_size != recipe.world_size:
        # an elastic start (resources.min_nodes) with fewer nodes than asked: the same global batch from
        # more accumulation (an error naming the values if it cannot be kept), so the data order holds
        recipe = run.load_recipe([f"resources.nodes={d.world_size // recipe.resources.procs_per_node}"])
        log(f"{d.world_size} processes joined (resources.nodes={recipe.resources.nodes}): "
            f"grad_accum {recipe.grad_accum}, global batch {recipe.global_batch_size}")
    stop = StopRequest(run.stop_file, d.is_main, d.device)
    torch.manual_seed(recipe.train.seed + d.rank)
    prepared = _prepare_once(recipe, d, log)
    tokenizer = prepared.tokenizer
    if d.is_main and not run.tokenizer.exists():
        tokenizer.save_pretrained(run.tokenizer)

    objective = build_objective(recipe, tokenizer, prepared.labels)
    if d.is_main:
        write_objective_file(run.path, recipe, prepared.labels)
    engine = build_engine(recipe, build_model(recipe, tokenizer, objective.head_config()), d)
    train_data = prepared.split("train")
    eval_data = prepared.split("eval") if prepared.has_eval else None
    order = GlobalOrder(objective.size(train_data), recipe.train.seed)
    micro, accum, world = recipe.train.micro_batch_size, recipe.grad_accum, d.world_size

    state = checkpoint.TrainerState(world_size=world, global_batch_size=recipe.global_batch_size,
                                    recipe_hash=training_hash(recipe))
    if d.is_main:
        checkpoint.clean_incomplete(run.checkpoints)
    dist.barrier()
    found = latest_complete(run.checkpoints)
    if found:
        state = checkpoint.load(engine, found[1], d)
        state.world_size, state.global_batch_size = world, recipe.global_batch_size
        state.recipe_hash = training_hash(recipe)
        log(f"resumed from {found[1]} (step {state.step}, {state.consumed_samples} samples consumed)")

    metrics = Metrics(run.metrics, run.tensorboard if recipe.logging.tensorboard else None, d.is_main)
    progress = TrainProgress(recipe.train.max_steps, state.step, recipe.logging.progress, d.is_main)
    evaluate = TrainingEvaluator(engine, objective, eval_data, recipe, d, metrics, progress, BestTracker(recipe, state))
    if state.step == 0 and recipe.eval.at_start:
        evaluate(0)

    window_loss, window_steps, window_start = torch.zeros((), device=d.device), 0, time.time()
    window_tokens = window_slots = 0  # real tokens / token slots (with padding) fed to the model
    checkpointer = checkpoint.Checkpointer(engine, run.checkpoints, recipe.checkpoint.keep_last,
                                           recipe.checkpoint.async_, d)
    sample_log = _SampleLog(run, d) if recipe.logging.sample_ids else None
    engine.model.train()  # once: evaluation puts back the mode it found (a walk over every module per step was 0.6%)
    while state.step < recipe.train.max_steps:
        engine.begin_step(state.step)
        step_loss = torch.zeros((), device=d.device)
        for m in range(accum):
            start = micro_batch_start(state.consumed_samples, m, micro, world, d.rank)
            indices = order.indices(start, micro)
            if sample_log:
                sample_log.write(state.step + 1, indices)
            positions = np.arange(start, start + micro)  # sample positions: seeds for any randomness (MLM masks)
            batch = objective.train_batch(train_data, indices, positions)
            window_slots += batch["input_ids"].numel()  # counted on the host copy: no device sync per micro batch
            window_tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
            batch = to_device(batch, d.device)
            with engine.accumulating(m == accum - 1):
                loss = engine.model(**batch).loss / accum
                engine.backward(loss)
            step_loss += loss.detach()
        grad_norm = engine.step()
        state.step += 1
        state.consumed_samples += recipe.global_batch_size
        window_loss += step_loss
        window_steps += 1
        last = state.step == recipe.train.max_steps

        if state.step % recipe.train.log_every == 0 or last:
            loss_sum, tokens, slots = sum_all([window_loss.item() / window_steps, window_tokens, window_slots], d.device)
            elapsed = time.time() - window_start
            tokens_per_s = tokens / max(elapsed, 1e-9)
            loss_mean = loss_sum / world
            metrics.log("train", state.step, loss=loss_mean, lr=engine.lr(), grad_norm=float(grad_norm),
                        tokens_per_s=tokens_per_s, nonpad_fraction=tokens / max(slots, 1),
                        consumed_samples=state.consumed_samples)
            progress.update(state.step, loss_mean, engine.lr(), tokens_per_s)
            window_loss, window_steps, window_start = torch.zeros((), device=d.device), 0, time.time()
            window_tokens = window_slots = 0

        paused = time.time()  # evaluation and checkpointing do not count against tokens/s
        verdict = None
        if last or (recipe.eval.every and state.step % recipe.eval.every == 0):
            verdict = evaluate(state.step)
        new_best, early_stop = bool(verdict and verdict.new_best), bool(verdict and verdict.stop)
        checkpointer.poll()
        if last or early_stop or new_best or (recipe.checkpoint.every and state.step % recipe.checkpoint.every == 0):
            checkpointer.save(state, best=new_best)
        window_start += time.time() - paused
        if early_stop:
            progress.message(f"early stopping at step {state.step}: {verdict.reason}")
            break
        if stop.agreed():
            stop.settle()
            if checkpointer.last_step != state.step:
                checkpointer.save(state)
            checkpointer.wait()
            progress.close()
            log(f"stopped on request at step {state.step}; checkpoint saved, `llaunch resume {run.path}` continues")
            metrics.close()
            return {"status": "interrupted", "step": state.step}

    stop.settle()
    checkpointer.wait()
    progress.close()
    metrics.close()
    result = {"status": "completed", "step": state.step}
    if state.best_step is not None:
        result.update(best_step=state.best_step, best_metric=recipe.eval.metric, best_value=state.best_value)
    if state.step < recipe.train.max_steps:
        result["early_stopped"] = True
    if recipe.output.export:
        engine.export(run.export, tokenizer, d.is_main)  # collective: FSDP2/ZeRO-3 gather full weights
        if d.is_main:
            write_objective_file(run.export, recipe, prepared.labels)
        result["export"] = str(run.export)
    return result


def _prepare_once(recipe: Recipe, d: Dist, log):
    """Rank 0 prepares (or finds the cache); the others wait, then open the same cache."""
    error = None
    if d.is_main:
        try:
            prepared = prepare(recipe, log=log)
        except UserError as exc:
            error = str(exc)
    error = broadcast_text(error, d.device)
    if error:
        raise UserError(error)
    if not d.is_main:
        prepared = prepare(recipe, log=lambda _: None)
    return prepared


class _SampleLog:
    """Opt-in (logging.sample_ids): the block indices each rank trained on, per step, for audits and tests.

    Records carry the attempt (rank 0's start time): after a resume, a step's records from the newest
    attempt are the ones that counted.
    """

    def __init__(self, run: RunDir, d: Dist):
        self._attempt = float(broadcast_text(repr(time.time()) if d.is_main else None, d.device))
        self._file = open(run.logs / f"samples-rank{d.rank}.jsonl", "a", encoding="utf-8")

    def write(self, step: int, indices: np.ndarray) -> None:
        self._file.write(json.dumps({"attempt": self._attempt, "step": step, "ids": indices.tolist()}) + "\n")
        self._file.flush()


def write_objective_file(directory: Path, recipe: Recipe, labels: list[str] | None) -> None:
    """objective.json: what `llaunch eval` and `llaunch export` need to rebuild the task (head labels, columns)."""
    data = recipe.data.model_dump(mode="json", exclude={"train", "eval", "eval_fraction"})
    payload = {"objective": recipe.objective, "labels": labels, "data": data,
               "eval": {"max_new_tokens": recipe.eval.max_new_tokens}}
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(directory / OBJECTIVE_FILE, json.dumps(payload, indent=1) + "\n")


def write_result(run: RunDir, result: dict) -> None:
    write_text_atomic(run.result_file, json.dumps(result, indent=1) + "\n")


def log_to(path: Path, echo: bool):
    handle = open(path, "a", encoding="utf-8", buffering=1)

    def log(message: str) -> None:
        handle.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        if echo:
            print(message, flush=True)

    return log
