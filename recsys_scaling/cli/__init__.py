"""`recsys-scaling` command line: train, sweep, budget, data, report, tune, ui, server, store."""
from .main import main

__all__ = ["main"]
