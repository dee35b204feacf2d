"""Sweeps: Hydra multiruns of training jobs under one MLflow parent run."""
from .grid import SweepConfigError

__all__ = ["SweepConfigError", "SweepSummary", "run_sweep"]


def __getattr__(name: str):
    # The runner brings the Hydra app, MLflow and the training stack; `budget` needs none of it.
    if name in ("SweepSummary", "run_sweep"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(name)
