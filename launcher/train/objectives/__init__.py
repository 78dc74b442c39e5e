"""The objectives, one module each; `objective_class(name)` picks one (recipe key `objective`)."""

from __future__ import annotations

from importlib import import_module

from launcher.train.objectives.base import EvalOutput, Objective

_CLASSES = {
    "clm": ("clm", "CausalLM"),
    "mlm": ("mlm", "MaskedLM"),
    "sft": ("sft", "InstructionTuning"),
    "seq_cls": ("seq_cls", "SequenceClassification"),
    "token_cls": ("token_cls", "TokenClassification"),
    "qa": ("qa", "QuestionAnswering"),
    "seq2seq": ("seq2seq", "Seq2Seq"),
}


def objective_class(name: str) -> type[Objective]:
    module, cls = _CLASSES[name]
    return getattr(import_module(f"launcher.train.objectives.{module}"), cls)


def build_objective(recipe, tokenizer, labels: list[str] | None = None) -> Objective:
    return objective_class(recipe.objective)(recipe, tokenizer, labels)


__all__ = ["EvalOutput", "Objective", "build_objective", "objective_class"]
