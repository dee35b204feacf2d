"""recsys-scaling: does your CTR model scale? SE-vs-ME scaling sweeps (Hydra) tracked in MLflow."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recsys-scaling")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"
