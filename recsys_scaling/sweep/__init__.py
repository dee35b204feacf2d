"""Sweeps: Hydra multiruns of training jobs under one MLflow parent run."""
from .runner import SweepSummary, resolve_sweep_file, run_sweep

__all__ = ["SweepSummary", "resolve_sweep_file", "run_sweep"]
