"""The project as a user installs it: a wheel in a fresh environment, run from an empty folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


def _run(command, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A wheel built from the checkout, installed (--no-deps) into a new venv whose dependencies
    come from the test environment through a .pth file that follows the venv's own site-packages."""
    base = tmp_path_factory.mktemp("packaging")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "MLFLOW_TRACKING_URI")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"),
          str(ROOT)], cwd=base, env=env)
    wheel = next((base / "dist").glob("recsys_scaling-*.whl"))
    target = base / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=base, env=env).stdout.strip())
    (site / "test_env_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
         cwd=base, env=env)
    empty = base / "empty"
    empty.mkdir()
    return {"bin": target / "bin", "python": python, "cwd": empty, "env": {**env, "MPLBACKEND": "Agg",
            "RECSYS_SCALING_CACHE": str(empty / "cache")}}


def test_the_wheel_carries_configs_and_sweeps(installed):
    where = _run([str(installed["python"]), "-c", "import recsys_scaling.paths as p; print(p.__file__); "
                  "print(p.CONF_DIR); print(p.BUILTIN_SWEEPS_DIR)"], installed["cwd"], installed["env"]).stdout.split()
    venv_root = str(installed["python"].parent.parent)
    assert all(line.startswith(venv_root) for line in where), where  # the wheel, not the checkout
    listing = _run([str(installed["bin"] / "recsys-scaling"), "sweeps"], installed["cwd"], installed["env"]).stdout
    assert "smoke" in listing and "demo" in listing and "built-in" in listing


def test_sweep_and_report_from_an_empty_folder(installed):
    cli = str(installed["bin"] / "recsys-scaling")
    cwd, env = installed["cwd"], installed["env"]
    user_sweeps = cwd / "sweeps"
    user_sweeps.mkdir()
    (user_sweeps / "mine.yaml").write_text("defaults:\n  - config\n  - _self_\n")
    assert "mine" in _run([cli, "sweeps"], cwd, env).stdout

    _run([cli, "sweep", "smoke", "data=synthetic_small"], cwd, env)
    _run([cli, "report", "smoke", "--resamples", "20"], cwd, env)
    fits = json.loads((cwd / "reports" / "smoke" / "fits.json").read_text())
    assert fits["claims"], "the report made no claim"
    assert (cwd / "mlflow.db").is_file()
