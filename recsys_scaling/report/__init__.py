"""Report stage: MLflow runs -> pandas -> claims and fits -> plots -> HTML / CSV / JSON."""
from .analysis import analyse
from .build import ClaimOptions, Report, build_report
from .compute import compute_multiplier
from .joint import JointLaw, joint_law, joint_laws

__all__ = ["ClaimOptions", "JointLaw", "Report", "analyse", "build_report", "compute_multiplier", "joint_law",
           "joint_laws"]
