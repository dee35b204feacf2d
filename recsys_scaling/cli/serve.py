"""`recsys-scaling ui` and `recsys-scaling server`: an MLflow server on a store, until Ctrl-C or kill."""
from __future__ import annotations

import argparse

def _serve(args: argparse.Namespace, backend: str, announce, workers: int = 1) -> int:
    """Start an MLflow server on `backend` (refusing a port in use), call `announce(url, process)`
    once it answers, and keep it until Ctrl-C or SIGTERM."""
    from .. import tracking

    if tracking.port_in_use(args.host, args.port):
        raise ValueError(f"--port {args.port}: {args.host}:{args.port} is already in use (another MLflow server?); "
                         f"pick a free one with --port, or open http://{args.host}:{args.port} if that server is yours")
    process = tracking.start_server(backend, args.host, args.port, args.artifacts, args.allow_remote, workers)
    url = f"http://{args.host}:{args.port}"
    try:
        tracking.wait_for_server(url, process=process)
        announce(url, process)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        tracking.stop_server(process)
    return 0


def _store_backend(args: argparse.Namespace) -> str:
    from ..config import resolve_tracking_uri

    backend = args.backend_store_uri or resolve_tracking_uri(None)
    if backend.startswith("http"):
        raise ValueError(f"--backend-store-uri {backend}: give the store itself (sqlite:///mlflow.db, postgresql://...)")
    return backend


def cmd_ui(args: argparse.Namespace) -> int:
    from .. import tracking

    backend = _store_backend(args)

    def announce(url: str, process) -> None:
        runs = tracking.experiment_url(url, tracking.Store(backend, args.experiment).experiment_id)
        print(f"MLflow UI: {runs}\n  (the runs of experiment {args.experiment!r}; server pid {process.pid}, store "
              f"{backend}); Ctrl-C stops it")
        print(f"jobs log to it with: tracking=server  (RECSYS_SCALING_UI_PORT={args.port} if not 5000)", flush=True)

    return _serve(args, backend, announce)


def cmd_server(args: argparse.Namespace) -> int:
    """Start the team's tracking server after checking its database; run until Ctrl-C."""
    import socket

    from .. import tracking

    postgres = None  # a local PostgreSQL runs while this handle lives, and stops when the process exits
    if args.local_postgres is not None:
        postgres, backend = tracking.local_postgres(args.local_postgres)
    else:
        backend = _store_backend(args)
    backend = tracking.check_store(backend)
    shown = socket.getfqdn() if args.host in ("0.0.0.0", "::") else args.host

    def announce(url: str, process) -> None:
        runs = tracking.experiment_url(f"http://{shown}:{args.port}", tracking.Store(url, args.experiment).experiment_id)
        print(f"MLflow tracking server: {url} (pid {process.pid}); store {backend}; artifacts {args.artifacts.resolve()}")
        print(f"jobs log to it with:  tracking.uri=http://{shown}:{args.port}  (or MLFLOW_TRACKING_URI=http://{shown}:"
              f"{args.port})")
        print(f"runs: {runs}\nCtrl-C stops it", flush=True)

    return _serve(args, backend, announce, args.workers)


