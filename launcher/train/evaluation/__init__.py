"""Evaluation: metric functions, the distributed evaluator, best-checkpoint tracking, `llaunch eval`."""
