"""Sweeps: Hydra multiruns of training jobs under one MLflow parent run."""
from .grid import SweepConfigError
from .runner import SweepSummary, resolve_sweep_file, run_sweep

__all__ = ["SweepConfigError", "SweepSummary", "resolve_sweep_file", "run_sweep"]
