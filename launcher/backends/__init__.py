"""Backends execute a LaunchPlan (local.py: a subprocess here; slurm.py: sbatch) and report on runs (status, logs)."""
