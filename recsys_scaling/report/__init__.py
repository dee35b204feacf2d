"""Report stage: MLflow runs -> pandas -> claims and fits -> plots -> HTML / CSV / JSON."""
from .analysis import analyse
from .build import ClaimOptions, Report, build_report

__all__ = ["ClaimOptions", "Report", "analyse", "build_report"]
