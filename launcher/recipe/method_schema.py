"""Recipe sections for what is trained and how it is sharded: method and parallel (pure pydantic, no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from launcher.recipe.sections import Section, as_list


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

    _patterns = field_validator("train_patterns", mode="before")(as_list)


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

    _modules = field_validator("modules_to_save", mode="before")(as_list)


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
    compile: bool = Field(
        False,
        description="torch.compile each transformer block in place (one graph serves all blocks; checkpoint and "
        "export keys unchanged): fuses the element-wise work between the matmuls. The first run compiles "
        "(~30 s on 2 CPU cores); later runs reuse torch's compile cache.",
    )
    deepspeed_config: str | None = Field(
        None, description="DeepSpeed JSON for zero1/2/3; default: ds_configs/<strategy>[_offload].json."
    )

    @property
    def is_deepspeed(self) -> bool:
        return self.strategy.startswith("zero")

    @property
    def zero_stage(self) -> int:
        return int(self.strategy[-1]) if self.is_deepspeed else 0
