"""The recipe schema: what to train and how wide. Pure pydantic, no torch.

Every section forbids unknown keys: a misspelt key is an error, never silently dropped.
"""

from __future__ import annotations

import re
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


class ColumnsSpec(Section):
    """Which column of a row holds what; the defaults are the names the shipped data uses."""

    text_pair: str | None = Field(None, description="seq_cls: second text of a pair (e.g. premise/hypothesis).")
    label: str = Field("label", description="seq_cls: the class name (a list of names with data.multi_label).")
    tokens: str = Field("tokens", description="token_cls: the list of words.")
    tags: str = Field("tags", description="token_cls: one BIO tag per word.")
    question: str = Field("question", description="qa: the question.")
    context: str = Field("context", description="qa: the passage holding the answer.")
    answers: str = Field(
        "answers", description="qa: SQuAD-style {text: [...], answer_start: [...]} (empty lists: no answer)."
    )
    source: str = Field("source", description="seq2seq: the input text.")
    target: str = Field("target", description="seq2seq: the output text.")
    instruction: str = Field("instruction", description="sft alpaca rows: the instruction.")
    input: str = Field("input", description="sft alpaca rows: the optional input.")
    output: str = Field("output", description="sft alpaca rows: the response.")
    messages: str = Field("messages", description="sft chat rows: a list of {role, content}.")


class DataSpec(Section):
    train: list[str] = Field(
        description="Training files: .txt (one document per line), .jsonl/.json, .parquet or .csv."
    )
    eval: list[str] = Field(default_factory=list, description="Evaluation files.")
    eval_fraction: float = Field(
        0.0, ge=0.0, le=0.5, description="Hold out this fraction of train when no eval files are given."
    )
    format: Literal["auto", "text", "jsonl", "parquet", "csv"] = Field(
        "auto", description="auto: by file extension."
    )
    text_field: str = Field("text", description="Field holding the text in rows (clm, mlm, seq_cls).")
    columns: ColumnsSpec = Field(default_factory=ColumnsSpec, description="Column names per objective.")
    seq_len: int = Field(
        512, ge=8, le=1_048_576,
        description="clm/mlm: tokens per packed sequence; other objectives: the longest example (or QA window).",
    )
    truncation: bool = Field(
        True, description="Cut examples longer than seq_len (false: such an example is an error naming its row)."
    )
    labels: list[str] | None = Field(
        None, description="seq_cls classes / token_cls BIO tags; a row outside them is an error. Default: those in data.train."
    )
    multi_label: bool = Field(False, description="seq_cls: each row has a list of labels (sigmoid + BCE loss).")
    sft_format: Literal["auto", "alpaca", "chat"] = Field(
        "auto", description="sft rows: alpaca (instruction/input/output) or chat (messages); auto: by the columns."
    )
    chat_template: Literal["tokenizer", "chatml", "plain"] = Field(
        "tokenizer", description="sft: the tokenizer's own chat template (chatml if it has none), chatml, or plain."
    )
    chat_template_file: str | None = Field(None, description="sft: a Jinja chat template file (wins over chat_template).")
    packing: bool = Field(
        False,
        description="sft: each micro batch is one padding-free row; attention stays inside each example and "
        "positions restart per example.",
    )
    stride: int = Field(128, ge=1, description="qa: tokens shared by consecutive windows over a long context.")
    target_len: int | None = Field(None, ge=1, description="seq2seq: the longest target; default: seq_len.")
    source_prefix: str = Field("", description="seq2seq: text put before every source (T5 task prefixes).")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="mlm: fraction of tokens masked (80/10/10).")
    whole_word_mask: bool = Field(False, description="mlm: mask every piece of a chosen word together.")
    num_proc: int = Field(1, ge=1, le=512, description="Processes for tokenization.")

    _lists = field_validator("train", "eval", mode="before")(_as_list)

    @field_validator("train")
    @classmethod
    def _nonempty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("data.train needs at least one file")
        return value

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("data.labels is empty; list the classes, or leave it out to take them from data.train")
            repeated = sorted({name for name in value if value.count(name) > 1})
            if repeated:
                raise ValueError(f"data.labels lists {', '.join(repeated)} more than once")
        return value


class FreezeSpec(Section):
    train_top_blocks: int | None = Field(
        None, ge=0, description="Train only the top K transformer blocks (the ones nearest the output)."
    )
    train_patterns: list[str] = Field(
        default_factory=list,
        description="Also train parameters whose name matches one of these regexes (re.search), e.g. `norm`, `lm_head`.",
    )
    unfreeze_every: int | None = Field(
        None, ge=1, description="Gradual unfreezing: one more block (downwards) becomes trainable every N steps."
    )

    _patterns = field_validator("train_patterns", mode="before")(_as_list)


class LoraSpec(Section):
    r: int = Field(8, ge=1, le=4096, description="LoRA rank.")
    alpha: float = Field(16, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = Field(
        "all-linear", description="Module names (or suffixes) to adapt, or `all-linear` (every linear but the output head)."
    )
    modules_to_save: list[str] = Field(
        default_factory=list, description="Modules trained fully and saved alongside the adapter, e.g. `lm_head`."
    )
    use_dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA).")

    _modules = field_validator("modules_to_save", mode="before")(_as_list)


class QloraSpec(Section):
    bits: Literal[4, 8] = Field(4, description="4: bitsandbytes 4-bit (QLoRA); 8: LLM.int8 base weights.")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type.")
    double_quant: bool = Field(True, description="Quantize the 4-bit quantization constants too.")
    compute_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="Dtype of the 4-bit matmuls; default: model.dtype."
    )
    quant_storage: Literal["uint8", "float32", "bfloat16", "float16"] = Field(
        "uint8", description="Storage dtype of packed 4-bit weights; FSDP2/ZeRO-3 need it equal to model.dtype."
    )


class MethodSpec(Section):
    type: Literal["full", "freeze", "lora", "qlora"] = Field(
        "full",
        description="What is trained: full (all weights), freeze (top blocks / matching modules), "
        "lora (peft adapters), qlora (adapters on a 4/8-bit base).",
    )
    freeze: FreezeSpec | None = Field(None, description="Settings for method.type=freeze.")
    lora: LoraSpec | None = Field(None, description="Settings for method.type=lora or qlora.")
    qlora: QloraSpec | None = Field(None, description="Settings for method.type=qlora.")

    @model_validator(mode="after")
    def _settings_match_type(self) -> MethodSpec:
        uses = {"freeze": {"freeze"}, "lora": {"lora", "qlora"}, "qlora": {"qlora"}}
        for section, types in uses.items():
            if getattr(self, section) is not None and self.type not in types:
                wanted = " or ".join(sorted(types))
                raise ValueError(f"method.{section} is set but method.type is {self.type}; "
                                 f"set method.type={wanted} or remove method.{section}")
        if self.type == "freeze":
            spec = self.freeze
            if spec is None or (spec.train_top_blocks is None and not spec.train_patterns):
                raise ValueError("method.type=freeze trains nothing: set method.freeze.train_top_blocks (K top "
                                 "blocks) and/or method.freeze.train_patterns")
        if self.type in ("lora", "qlora") and self.lora is None:
            self.lora = LoraSpec()
        if self.type == "qlora" and self.qlora is None:
            self.qlora = QloraSpec()
        return self


class ParallelSpec(Section):
    strategy: Literal["ddp", "fsdp2", "zero1", "zero2", "zero3"] = Field(
        "ddp",
        description="ddp: full replicas; fsdp2: torch fully_shard per block; zero1/2/3: DeepSpeed ZeRO "
        "(optimizer / +gradients / +parameters sharded).",
    )
    offload: Literal["none", "optimizer", "params"] = Field(
        "none",
        description="Offload to CPU memory: optimizer (ZeRO: optimizer states and step), params "
        "(zero3 or fsdp2: parameters too, with the optimizer).",
    )
    mixed_precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Compute dtype of forward/backward; master weights and optimizer stay in model.dtype."
    )
    activation_checkpointing: bool = Field(False, description="Recompute block activations in backward.")
    deepspeed_config: str | None = Field(
        None, description="DeepSpeed JSON for zero1/2/3; default: ds_configs/<strategy>[_offload].json."
    )

    @property
    def is_deepspeed(self) -> bool:
        return self.strategy.startswith("zero")

    @property
    def zero_stage(self) -> int:
        return int(self.strategy[-1]) if self.is_deepspeed else 0


class ResourcesSpec(Section):
    launcher: Literal["local", "torchrun", "deepspeed", "slurm"] = Field(
        "torchrun",
        description="local: one plain process; torchrun: procs_per_node workers per node (c10d rendezvous "
        "across nodes); deepspeed: the DeepSpeed launcher (hostfile + ssh across nodes); slurm: a batch job "
        "(`llaunch submit`) whose srun starts one torchrun per node.",
    )
    nodes: int = Field(1, ge=1, le=4096)
    min_nodes: int | None = Field(
        None, ge=1, le=4096, description="Elastic torchrun/slurm: start with at least this many nodes (min:max)."
    )
    procs_per_node: int = Field(1, ge=1, le=64, description="Worker processes (GPUs) per node.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available.")
    threads_per_proc: int | None = Field(
        None, ge=1, le=256, description="OMP_NUM_THREADS per worker; default: cores / procs_per_node."
    )
    rdzv_endpoint: str | None = Field(
        None,
        description="host[:port] of the first node, for torchrun or deepspeed on several nodes without SLURM; "
        "default port: derived from the run name.",
    )
    hosts: list[str] = Field(
        default_factory=list, description="Host names for the deepspeed launcher on several nodes (its hostfile)."
    )
    max_restarts: int = Field(
        0, ge=0, le=1000, description="torchrun restarts all workers this often after a failure (they resume)."
    )

    _hosts = field_validator("hosts", mode="before")(_as_list)

    @field_validator("rdzv_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]+(:\d{1,5})?", value):
            raise ValueError("expected host or host:port, e.g. gpu-001:29400")
        return value

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for host in value:
            if not re.fullmatch(r"[A-Za-z0-9._-]+", host):
                raise ValueError(f"{host!r} is not a host name (letters, digits, . _ -)")
        return value

    @model_validator(mode="after")
    def _elastic(self) -> ResourcesSpec:
        if self.min_nodes is not None and self.min_nodes > self.nodes:
            raise ValueError(f"resources.min_nodes={self.min_nodes} is more than resources.nodes={self.nodes}")
        return self


class ContainerSpec(Section):
    image: str = Field(description="Container image for pyxis/enroot (srun --container-image).")
    mounts: list[str] = Field(
        default_factory=list, description="src:dst[:flags] bind mounts; include the data, cache and output dirs."
    )
    workdir: str | None = Field(None, description="Working directory inside the container.")

    _mounts = field_validator("mounts", mode="before")(_as_list)


class SlurmSpec(Section):
    """Unset keys come from the cluster profile (`profile`), else from SLURM's own defaults."""

    profile: str | None = Field(None, description="Cluster profile: slurm/profiles/<name>.yaml, or a .yaml path.")
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time: str | None = Field(None, description="Time limit, e.g. 4:00:00 or 2-00:00:00.")
    gpus_per_node: int | None = Field(None, ge=0, le=64, description="GPUs requested per node (--gpus-per-node).")
    cpus_per_task: int | None = Field(None, ge=1, le=4096, description="CPUs per node (one task per node).")
    mem: str | None = Field(None, description="Memory per node, e.g. 200G (0: all of it).")
    modules: list[str] | None = Field(None, description="`module load` these before starting.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Variables set in the job script (no secrets: those are passed by name)."
    )
    extra_sbatch: list[str] | None = Field(None, description="More #SBATCH options, e.g. --exclusive.")
    signal_lead: int | None = Field(
        None, ge=10, le=86_400, description="Seconds before the time limit the job is told to checkpoint (120)."
    )
    max_requeues: int | None = Field(None, ge=0, le=1000, description="Requeues after preemption signals (3).")
    python: str | None = Field(
        None, description="Python on the compute nodes; default: the one running llaunch (python3 in a container)."
    )
    container: ContainerSpec | None = Field(None, description="Run the workers in a container (pyxis).")

    _lists = field_validator("modules", "extra_sbatch", mode="before")(_as_list)

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        text = {bool: lambda v: str(v).lower(), int: str, float: str}
        return {k: text[type(v)](v) if type(v) in text else v for k, v in value.items()}

    @field_validator("time", "mem", mode="before")
    @classmethod
    def _quoted(cls, value: Any, info) -> Any:
        if info.field_name == "mem" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # mem: 0 (all of it) or megabytes
        if info.field_name == "time" and isinstance(value, int):
            raise ValueError('quote it, e.g. time: "4:00:00" (YAML reads an unquoted 4:00:00 as seconds)')
        return value

    @field_validator("time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(\d+-)?\d+(:\d\d){0,2}|UNLIMITED|INFINITE", value):
            raise ValueError("expected a SLURM time: MINUTES, HH:MM:SS, D-HH, D-HH:MM:SS or UNLIMITED")
        return value

    @field_validator("mem")
    @classmethod
    def _mem(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+[KMGT]?", value):
            raise ValueError("expected a size such as 200G, 64000M or 0 (all of the node's memory)")
        return value


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
    metric: str | None = Field(
        None,
        description="The metric that picks the best checkpoint (kept and marked BEST); e.g. accuracy, f1, bleu, "
        "loss. Unset: no best checkpoint is tracked.",
    )
    max_new_tokens: int = Field(32, ge=1, le=65_536, description="sft/seq2seq: tokens generated per eval example.")


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
    objective: Literal["clm", "mlm", "sft", "seq_cls", "token_cls", "qa", "seq2seq"] = Field(
        "clm", description="clm: causal LM; mlm: masked LM; sft: instruction tuning; seq_cls / token_cls: "
        "classification of sequences / tokens; qa: extractive QA; seq2seq: encoder-decoder generation.",
    )
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
        if self.data.packing and self.objective != "sft":
            raise ValueError(f"data.packing is for objective sft (objective is {self.objective}); "
                             "clm and mlm always pack")
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
