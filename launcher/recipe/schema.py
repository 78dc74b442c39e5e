"""The recipe schema: what to train and how wide. Pure pydantic, no torch.

Every section forbids unknown keys: a misspelt key is an error, never silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class ModelSpec(Section):
    path: str | None = Field(None, description="Local Hugging Face model directory to start from.")
    config: dict[str, Any] | None = Field(
        None,
        description="Build a new model from a config: `type` (llama, bert, ...) plus its config keys. "
        "vocab_size defaults to the tokenizer's.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Dtype of the master weights."
    )
    trust_remote_code: bool = Field(False, description="Allow code shipped with the model directory.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.path is None) == (self.config is None):
            raise ValueError("give exactly one of model.path (a local model directory) or model.config")
        if self.config is not None and not isinstance(self.config.get("type"), str):
            raise ValueError("model.config needs a `type`, e.g. type: llama")
        return self


class TokenizerTrainSpec(Section):
    vocab_size: int = Field(1000, ge=64, le=1_000_000, description="Pieces in the trained vocabulary.")
    files: list[str] | None = Field(None, description="Corpus files; default: data.train.")
    model_type: Literal["bpe", "unigram"] = "bpe"

    _files = field_validator("files", mode="before")(_as_list)


class TokenizerSpec(Section):
    path: str | None = Field(None, description="Local tokenizer directory; default: model.path.")
    train: TokenizerTrainSpec | None = Field(None, description="Train a sentencepiece tokenizer.")

    @model_validator(mode="after")
    def _not_both(self) -> TokenizerSpec:
        if self.path is not None and self.train is not None:
            raise ValueError("give tokenizer.path or tokenizer.train, not both")
        return self


class DataSpec(Section):
    train: list[str] = Field(description="Training files (.txt: one document per line; .jsonl).")
    eval: list[str] = Field(default_factory=list, description="Evaluation files.")
    eval_fraction: float = Field(
        0.0, ge=0.0, le=0.5, description="Hold out this fraction of train when no eval files are given."
    )
    format: Literal["auto", "text", "jsonl"] = Field("auto", description="auto: by file extension.")
    text_field: str = Field("text", description="Field holding the text in jsonl rows.")
    seq_len: int = Field(512, ge=8, le=1_048_576, description="Tokens per packed training sequence.")
    num_proc: int = Field(1, ge=1, le=512, description="Processes for tokenization.")

    _lists = field_validator("train", "eval", mode="before")(_as_list)

    @field_validator("train")
    @classmethod
    def _nonempty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("data.train needs at least one file")
        return value


class MethodSpec(Section):
    type: Literal["full"] = Field("full", description="What is trained: full fine-tuning / pretraining.")


class ParallelSpec(Section):
    strategy: Literal["ddp"] = Field("ddp", description="Data-parallel engine.")


class ResourcesSpec(Section):
    launcher: Literal["local", "torchrun"] = Field(
        "torchrun", description="local: one plain process; torchrun: procs_per_node workers per node."
    )
    nodes: int = Field(1, ge=1, le=4096)
    procs_per_node: int = Field(1, ge=1, le=64, description="Worker processes (GPUs) per node.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available.")
    threads_per_proc: int | None = Field(
        None, ge=1, le=256, description="OMP_NUM_THREADS per worker; default: cores / procs_per_node."
    )


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


class CheckpointSpec(Section):
    every: int = Field(0, ge=0, description="Save every N steps (0: only at the end).")
    keep_last: int = Field(2, ge=1, description="Complete checkpoints kept.")
    async_: bool = Field(
        False, alias="async", description="Stage in memory and write in the background (DCP engines)."
    )


class LoggingSpec(Section):
    tensorboard: bool = True
    sample_ids: bool = Field(False, description="Write the sample ids of every step to logs/samples-rankN.jsonl.")
    progress: Literal["auto", "bar", "lines"] = Field(
        "auto", description="auto: a live bar on a terminal, plain lines otherwise."
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
    objective: Literal["clm"] = Field("clm", description="clm: causal language modelling.")
    method: MethodSpec = Field(default_factory=MethodSpec)
    parallel: ParallelSpec = Field(default_factory=ParallelSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    train: TrainSpec
    eval: EvalSpec = Field(default_factory=EvalSpec)
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
)
