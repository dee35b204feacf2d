from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> dict:
    """Real-format sample files written by tests/samples.py (nothing outside the repository)."""
    import samples as make

    folder = tmp_path_factory.mktemp("samples")
    return {"criteo": make.criteo_csv_variant(folder / "criteo_sample.txt"),
            "avazu": make.avazu_csv(folder / "avazu_sample.txt"),
            "csv": make.generic_csv(folder / "train_sample.csv")}


def sweep_counts(text: str) -> dict:
    """The counts of a sweep's closing table: {"finished": 2, "skipped": 0, "failed": 0, ...}."""
    counts = {}
    for line in text.splitlines():
        match = re.match(r"^\s+(finished|skipped|failed|not finished|did not start)\b.*?\s{2,}(\d+)$", line)
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One dataset cache for the whole session: synthetic data is generated once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def workdir(tmp_path, monkeypatch, data_cache) -> Path:
    """A fresh working directory with its own MLflow store; the session's data cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RECSYS_SCALING_CACHE", str(data_cache))
    return tmp_path


@pytest.fixture
def store_uri(workdir) -> str:
    return f"sqlite:///{workdir / 'mlflow.db'}"


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")
    # The per-machine timing calibration (sweep/calibration.py) stays inside the test session, shared by
    # its tests and the processes they start (never the user's ~/.cache).
    import tempfile

    os.environ["RECSYS_SCALING_CALIBRATION"] = tempfile.mkdtemp(prefix="recsys-calibration-")


def pytest_collection_modifyitems(config, items):
    """Integration tests are slow too: `-m "not slow"` is the inner loop without either. Tests
    marked gpu need CUDA: without it they are deselected, and the summary says how many."""
    for item in items:
        if item.get_closest_marker("integration") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    import torch

    if not torch.cuda.is_available():
        gpu = [item for item in items if item.get_closest_marker("gpu")]
        if gpu:
            config.hook.pytest_deselected(items=gpu)
            items[:] = [item for item in items if not item.get_closest_marker("gpu")]
            config._recsys_gpu_deselected = len(gpu)  # noqa: SLF001 - for the summary line below


def pytest_report_header(config):
    import torch

    return None if torch.cuda.is_available() else "tests marked gpu: deselected (no CUDA device here)"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    count = getattr(config, "_recsys_gpu_deselected", 0)
    if count:
        terminalreporter.write_line(f"{count} gpu tests deselected: no CUDA device here "
                                    "(benchmarks/gpu_check.sh runs them on a GPU machine)")
