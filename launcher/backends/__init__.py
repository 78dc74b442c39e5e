"""Backends execute a LaunchPlan: a local subprocess (SLURM comes with the backends issue)."""
