"""Checking a user's MLflow search filter before any store is opened."""
from __future__ import annotations

import re

from mlflow.exceptions import MlflowException
from mlflow.utils.search_utils import SearchUtils

FILTER_EXAMPLE = "tags.backbone = 'dnn' and metrics.test_auc > 0.7"
_DANGLING_AND = re.compile(r"(^\s*and\b)|(\band\s*$)", re.IGNORECASE)


def check_filter(text: str, option: str = "--filter") -> str:
    """The filter unchanged if MLflow can parse it; else ValueError in one line saying what is wrong.

    MLflow's parser silently drops a trailing `and`, which would hide a clause the user meant to add."""
    if not text.strip():
        return ""
    problem = "it starts or ends with 'and'" if _DANGLING_AND.search(text) else _parse_problem(text)
    if problem:
        raise ValueError(f"{option} {text!r}: {problem}; MLflow search syntax joins clauses with 'and' "
                         f"(there is no 'or'), values quoted, e.g. \"{FILTER_EXAMPLE}\"")
    return text


def _parse_problem(text: str) -> str:
    try:
        SearchUtils.parse_search_filter(text)
    except MlflowException as exc:
        return exc.message.rstrip(".")
    return ""
