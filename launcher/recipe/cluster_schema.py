"""Recipe sections for where it runs: resources, SLURM and containers (pure pydantic, no torch)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from launcher.recipe.sections import Section, as_list


class HangSpec(Section):
    """When a run counts as hung (a step, or a collective inside it, that does not end): every rank then writes
    its Python stacks to logs/hang-step-N-rank-R.txt and the run ends with exit code 3."""

    factor: float = Field(
        10.0, ge=1.5, le=1000, description="A step longer than this many times the median of the recent steps hangs."
    )
    min_seconds: float = Field(300.0, gt=0, description="A step is never a hang before this many seconds.")
    startup_seconds: float = Field(
        1800.0, gt=0, description="The limit until 3 steps are timed, and around evaluations and saves (start-up: "
        "model load, compile)."
    )


class SlowRankSpec(Section):
    """When a rank counts as slow (a node to drain): named in the log, metrics.jsonl and `llaunch status`."""

    factor: float = Field(1.5, gt=1, le=100, description="Slower than this many times the median rank's forward time per step.")
    windows: int = Field(3, ge=1, le=10_000, description="For this many log windows (train.log_every) in a row.")


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

    hang_timeout: HangSpec = Field(
        default_factory=HangSpec, description="The hang watchdog: a multiple of the median step time, with a floor."
    )
    slow_rank: SlowRankSpec = Field(
        default_factory=SlowRankSpec, description="Naming a rank persistently slower than the others (its host)."
    )

    _hosts = field_validator("hosts", mode="before")(as_list)

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

    _mounts = field_validator("mounts", mode="before")(as_list)


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
    max_requeues: int | None = Field(
        None, ge=0, le=1000, description="Automatic restarts of a job (preempted, hung, a node lost, workers dead) (3)."
    )
    prepare_tasks: int | None = Field(
        None, ge=0, le=10_000, description="`llaunch submit` on unprepared data: a SLURM array job of this many CPU "
        "tasks (at most one per shard) prepares it, and the training job waits for it (8); 0: prepare on the login node."
    )
    python: str | None = Field(
        None, description="Python on the compute nodes; default: the one running llaunch (python3 in a container)."
    )
    container: ContainerSpec | None = Field(None, description="Run the workers in a container (pyxis).")

    _lists = field_validator("modules", "extra_sbatch", mode="before")(as_list)

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
