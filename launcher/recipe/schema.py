"""The recipe schema: what to train and how wide. Pure pydantic, no torch.

Every section forbids unknown keys: a misspelt key is an error, never silently dropped.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from launcher.recipe.cluster_schema import ContainerSpec, ResourcesSpec, SlurmSpec
from launcher.recipe.data_schema import ColumnsSpec, DataSpec, ModelSpec, TokenizerSpec, TokenizerTrainSpec
from launcher.recipe.method_schema import FreezeSpec, LoraSpec, MethodSpec, ParallelSpec, QloraSpec
from launcher.recipe.objectives import OBJECTIVE_NAMES
from launcher.recipe.packing import packing_default
from launcher.recipe.sections import Section

__all__ = ["CheckpointSpec", "ColumnsSpec", "ContainerSpec", "DataSpec", "DpoSpec", "EarlyStoppingSpec", "EvalSpec", "FreezeSpec",
           "LoggingSpec", "LoraSpec", "MethodSpec", "ModelSpec", "OutputSpec", "PATH_KEYS", "ParallelSpec",
           "QloraSpec", "Recipe", "ResourcesSpec", "Section", "SlurmSpec", "TokenizerSpec", "TokenizerTrainSpec",
           "TrainSpec"]


class TrainSpec(Section):
    seed: int = Field(0, ge=0)
    max_steps: int = Field(ge=1, le=100_000_000, description="Optimizer steps.")
    micro_batch_size: int = Field(8, ge=1, le=65_536, description="Sequences per process per forward.")
    grad_accum: int | None = Field(
        None, ge=1, le=65_536, description="Micro batches per step; default: from global_batch_size, else 1."
    )
    global_batch_size: int | None = Field(
        None, ge=1, description="Sequences per optimizer step over all processes (kept across world sizes)."
    )
    micro_batch_tokens: int | None = Field(
        None, ge=1, description="Token budget per forward: a process's examples of a step (micro_batch_size x "
        "grad_accum) are regrouped, longest first and never split, into micro batches of at most this many tokens "
        "(padded: rows x longest; packed: the sum). The step's samples and loss stay the same."
    )
    lr: float = Field(3e-4, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0, le=10)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["linear", "cosine", "constant"] = Field(
        "cosine", description="Decay after warmup (transformers' schedulers)."
    )
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping; null: off.")
    log_every: int = Field(10, ge=1)


class EvalSpec(Section):
    every: int = Field(0, ge=0, description="Evaluate every N steps (0: only at the end).")
    at_start: bool = Field(True, description="Evaluate before the first step, as a baseline.")
    max_batches: int | None = Field(None, ge=1, description="Cap on eval batches per process.")
    metric: str | None = Field(
        None,
        description="The metric that picks the best checkpoint (kept and marked BEST); e.g. accuracy, f1, bleu, "
        "loss. Unset: no best checkpoint is tracked.",
    )
    max_new_tokens: int = Field(32, ge=1, le=65_536, description="sft/seq2seq: tokens generated per eval example.")


class DpoSpec(Section):
    loss: Literal["sigmoid", "ipo"] = Field(
        "sigmoid", description="sigmoid: DPO, -log sigmoid(beta x the log-ratio margin); ipo: IPO, (margin - "
        "1/(2 beta))^2 on per-token mean log-probs (as TRL).",
    )
    beta: float = Field(0.1, gt=0, le=100, description="How far the policy may move from the reference.")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="sigmoid: the assumed chance that a pair's preference is flipped "
        "(conservative DPO).",
    )
    reference: Literal["auto", "adapter", "precomputed"] = Field(
        "auto", description="The reference log-probs: adapter: the model with its LoRA adapter disabled "
        "(lora/qlora; no second model); precomputed: the starting model's, computed once at the first pass and "
        "kept in the data cache (any method and engine; keep the cache while the run lives: a resume that finds "
        "them gone stops); auto: adapter for lora/qlora, else precomputed.",
    )


class EarlyStoppingSpec(Section):
    metric: str | None = Field(None, description="Default: eval.metric.")
    patience: int = Field(ge=1, le=1_000_000, description="Stop after this many evals without improvement.")
    min_delta: float = Field(0.0, ge=0, description="An improvement smaller than this does not count.")


class CheckpointSpec(Section):
    every: int = Field(0, ge=0, description="Save every N steps (0: only at the end).")
    keep_last: int = Field(2, ge=1, description="Complete checkpoints kept.")
    async_: bool = Field(
        False, alias="async", description="Stage in memory and write in the background (DCP engines)."
    )
    at_end: bool = Field(
        True, description="Save at the last step (false: a run that only wants its export skips that write; "
        "a stop request or a new best still saves)."
    )


class WandbSpec(Section):
    project: str = Field(description="Weights & Biases project.")
    entity: str | None = Field(None, description="Team or user; default: the API key's.")
    name: str | None = Field(None, description="Run name; default: the run directory's name.")
    tags: list[str] = Field(default_factory=list)
    mode: Literal["online", "offline"] = Field(
        "online", description="offline: written under the run dir only (`wandb sync` uploads it later)."
    )


class MlflowSpec(Section):
    tracking_uri: str | None = Field(
        None, description="MLflow tracking server or store (http://..., file:/...); default: MLFLOW_TRACKING_URI, "
        "else ./mlruns.",
    )
    experiment: str = Field("llaunch", description="Experiment the run is created in (made if missing).")


class LoggingSpec(Section):
    tensorboard: bool = True
    wandb: WandbSpec | None = Field(
        None, description="Also log to Weights & Biases (rank 0; the resolved recipe as config; a resumed run "
        "continues the same W&B run). Needs `pip install wandb`; the key comes from WANDB_API_KEY.",
    )
    mlflow: MlflowSpec | None = Field(
        None, description="Also log to MLflow (rank 0; the resolved recipe as params; a resumed run continues the "
        "same MLflow run). Needs `pip install mlflow-skinny`; credentials from MLFLOW_TRACKING_* variables.",
    )
    sample_ids: bool = Field(False, description="Write the sample ids of every step to logs/samples-rankN.jsonl.")
    progress: Literal["auto", "bar", "lines"] = Field(
        "auto", description="auto: a live bar on a terminal, plain lines otherwise."
    )
    peak_tflops: float | None = Field(
        None, gt=0, description="One device's peak TFLOP/s for the MFU in the logs (model FLOPs utilisation); "
        "default: the dense bf16 peak of a known GPU (H100 989, H200 989, A100 312, L40S 362, ...); unset on a "
        "CPU or an unknown device: no MFU."
    )


class OutputSpec(Section):
    dir: str = Field("runs", description="Runs are created under this directory (relative to the cwd).")
    cache_dir: str | None = Field(None, description="Prepared-data cache; default: <dir>/.cache.")
    export: bool = Field(True, description="Write a Hugging Face model directory at the end.")


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Run name prefix.")
    description: str = ""
    model: ModelSpec
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    data: DataSpec
    objective: Literal[OBJECTIVE_NAMES] = Field(
        "clm", description="clm: causal LM; mlm: masked LM; sft: instruction tuning; seq_cls / token_cls: "
        "classification of sequences / tokens; qa: extractive QA; seq2seq: encoder-decoder generation; "
        "dpo: preference tuning on prompt/chosen/rejected rows; reward: a reward model on the same rows.",
    )
    dpo: DpoSpec | None = Field(None, description="objective dpo: its loss and reference (default: DPO, beta 0.1).")
    method: MethodSpec = Field(default_factory=MethodSpec)
    parallel: ParallelSpec = Field(default_factory=ParallelSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)
    train: TrainSpec
    eval: EvalSpec = Field(default_factory=EvalSpec)
    early_stopping: EarlyStoppingSpec | None = Field(None, description="Stop when eval stops improving.")
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)

    @model_validator(mode="after")
    def _tokenizer_source(self) -> Recipe:
        if self.tokenizer.path is None and self.tokenizer.train is None and self.model.path is None:
            raise ValueError("no tokenizer: set tokenizer.path, tokenizer.train, or model.path")
        if self.resources.launcher == "local" and self.resources.procs_per_node * self.resources.nodes > 1:
            raise ValueError("resources.launcher=local runs one process; use launcher: torchrun for more")
        return self

    @model_validator(mode="after")
    def _objective_metrics(self) -> Recipe:
        from launcher.recipe.objectives import check_metric

        if self.eval.metric is not None:
            check_metric(self.objective, self.eval.metric, "eval.metric")
        stopping = self.early_stopping
        if stopping is not None:
            if stopping.metric is None:
                stopping.metric = self.eval.metric or "loss"
            check_metric(self.objective, stopping.metric, "early_stopping.metric")
            if self.eval.metric is None:
                self.eval.metric = stopping.metric  # the best checkpoint follows what stopping watches
            if self.eval.every == 0:
                raise ValueError("early_stopping needs evaluations during training: set eval.every")
        budget = self.train.micro_batch_tokens
        longest = self.data.seq_len + ((self.data.target_len or self.data.seq_len) if self.objective == "seq2seq" else 0)
        if budget is not None and budget < longest:
            raise ValueError(f"train.micro_batch_tokens={budget} is less than the longest example ({longest} tokens: "
                             f"data.seq_len{' + data.target_len' if self.objective == 'seq2seq' else ''}); "
                             f"raise it to at least {longest}")
        if self.data.packing is None:  # resolved once here: the run's recipe.yaml records what it trains with
            self.data.packing = packing_default(self.objective, self.model)[0]
        if self.data.packing and self.objective != "sft":
            raise ValueError(f"data.packing is for objective sft (objective is {self.objective}); "
                             "clm and mlm always pack")
        return self

    @model_validator(mode="after")
    def _dpo(self) -> Recipe:
        if self.objective != "dpo":
            if self.dpo is not None:
                raise ValueError(f"dpo: settings of objective dpo, but objective is {self.objective}; remove the "
                                 "dpo section or set objective: dpo")
            return self
        if self.dpo is None:  # resolved here: the run's recipe.yaml records what it trains with
            self.dpo = DpoSpec()
        dpo, method = self.dpo, self.method.type
        if dpo.reference == "adapter" and method not in ("lora", "qlora"):
            raise ValueError(f"dpo.reference=adapter needs an adapter to disable (method.type=lora or qlora); "
                             f"method.type={method} trains the weights themselves: use dpo.reference=precomputed")
        if dpo.loss == "ipo" and dpo.label_smoothing:
            raise ValueError("dpo.label_smoothing is for dpo.loss=sigmoid; IPO has none: set it to 0")
        return self

    @model_validator(mode="after")
    def _engine_and_method_compatible(self) -> Recipe:
        from launcher.recipe.compat import check  # engine x method x precision rules (parallel/method owner)

        check(self)
        return self

    @property
    def world_size(self) -> int:
        return self.resources.nodes * self.resources.procs_per_node

    @property
    def grad_accum(self) -> int:
        """Micro batches per optimizer step at this recipe's world size."""
        if self.train.grad_accum is not None:
            return self.train.grad_accum
        if self.train.global_batch_size is None:
            return 1
        return max(1, self.train.global_batch_size // (self.train.micro_batch_size * self.world_size))

    @property
    def global_batch_size(self) -> int:
        return self.train.micro_batch_size * self.grad_accum * self.world_size

    @model_validator(mode="after")
    def _global_batch(self) -> Recipe:
        wanted = self.train.global_batch_size
        if wanted is not None and wanted != self.global_batch_size:
            raise ValueError(
                f"train.global_batch_size={wanted} is not micro_batch_size ({self.train.micro_batch_size})"
                f" x grad_accum ({self.grad_accum}) x world size ({self.world_size})"
                f" = {self.global_batch_size}; pick values whose product is {wanted}"
            )
        return self


# Keys holding file paths: relative values are resolved against the recipe file that sets them.
PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("model", "path"),
    ("tokenizer", "path"),
    ("tokenizer", "train", "files"),
    ("data", "train"),
    ("data", "eval"),
    ("data", "chat_template_file"),
    ("parallel", "deepspeed_config"),
)
