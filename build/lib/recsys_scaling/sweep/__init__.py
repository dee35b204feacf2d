"""Sweeps: Hydra multiruns of training jobs under one MLflow parent run."""
from .grid import SweepConfigError
from .runner import SweepSummary, run_sweep

__all__ = ["SweepConfigError", "SweepSummary", "run_sweep"]
