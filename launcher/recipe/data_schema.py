"""Recipe sections for what is read: the model, the tokenizer and the data (pure pydantic, no torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from launcher.recipe.sections import Section, as_list


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

    _files = field_validator("files", mode="before")(as_list)


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
    conversations: str = Field(
        "conversations", description="sft ShareGPT rows: a list of {from, value} (from: system, human, gpt)."
    )
    prompt: str = Field("prompt", description="dpo/reward: the prompt (text, or chat messages).")
    chosen: str = Field("chosen", description="dpo/reward: the preferred answer (text, or assistant messages).")
    rejected: str = Field("rejected", description="dpo/reward: the dispreferred answer (text, or assistant messages).")


class DataSpec(Section):
    train: list[str] = Field(
        description="Training files: .txt (one document per line), .jsonl/.json, .parquet or .csv. A weighted "
        "mixture lists sources as {path, weight}: each is sampled in that proportion (written back as data.weights).",
    )
    weights: list[float] | None = Field(
        None, description="Sampling weight of each data.train source, in order (set by {path, weight} entries); "
        "default: the files are one source, read in order.",
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
    chat_template_file: str | None = Field(
        None, description="sft: a Jinja chat template file (wins over chat_template); it renders alpaca rows too."
    )
    alpaca_separator: str = Field(
        "\n\n", description="sft alpaca rows: the text between instruction and a non-empty input in the user turn "
        "(LLaMA-Factory joins them with a newline).",
    )
    packing: bool | None = Field(
        None,
        description="sft: each micro batch is one padding-free row; attention stays inside each example and "
        "positions restart per example. Unset: on where the model's attention keeps examples apart at full speed "
        "(Llama, Mistral, Qwen, ... without a sliding window; `llaunch plan` says), else padded.",
    )
    stride: int = Field(128, ge=1, description="qa: tokens shared by consecutive windows over a long context.")
    target_len: int | None = Field(None, ge=1, description="seq2seq: the longest target; default: seq_len.")
    source_prefix: str = Field("", description="seq2seq: text put before every source (T5 task prefixes).")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="mlm: fraction of tokens masked (80/10/10).")
    whole_word_mask: bool = Field(False, description="mlm: mask every piece of a chosen word together.")
    num_proc: int = Field(1, ge=1, le=512, description="Processes for tokenization.")

    _lists = field_validator("train", "eval", mode="before")(as_list)

    @model_validator(mode="before")
    @classmethod
    def _weighted_sources(cls, value: Any) -> Any:
        """`train: [{path, weight}, ...]` -> train: [path, ...] + weights: [weight, ...]."""
        if not isinstance(value, dict) or not isinstance(value.get("train"), list):
            return value
        entries = value["train"]
        if not any(isinstance(entry, dict) for entry in entries):
            return value
        paths, weights = [], []
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict) or set(entry) != {"path", "weight"}:
                raise ValueError(f"data.train[{k}]: a weighted source is {{path: FILE, weight: NUMBER}}, "
                                 f"got {entry!r}; give every source a weight")
            paths.append(entry["path"])
            weights.append(entry["weight"])
        return {**value, "train": paths, "weights": weights}

    @model_validator(mode="after")
    def _valid_weights(self) -> DataSpec:
        if self.weights is None:
            return self
        if len(self.weights) != len(self.train):
            raise ValueError(f"data.weights has {len(self.weights)} values for {len(self.train)} data.train sources")
        if any(w < 0 or w != w for w in self.weights):
            raise ValueError(f"data.weights: {self.weights}: a weight is a number >= 0")
        if not any(self.weights):
            raise ValueError("data.weights are all zero; give at least one source a weight > 0")
        return self

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
