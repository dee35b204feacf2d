"""Opening a store: a server must answer within seconds, a database must accept a connection
(MLflow would retry for minutes), a sqlite file that is not a store, or cannot be written, is
one line naming it, and sqlite stores are created by one process at a time."""
from __future__ import annotations

import errno
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional


class StoreUnreachable(ConnectionError):
    """The tracking store stopped answering (a tracking server down, a database gone)."""


@contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """Several processes opening a new sqlite store at once would each create its tables (one
    then fails with "table ... already exists"): they take turns on a lock file beside it."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock_path = Path(uri[len("sqlite:///"):] + ".lock")
    try:
        lock = open(lock_path, "a")
    except OSError as exc:  # a read-only folder (an archived store) is read without the lock: nothing is created
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or not lock_path.with_suffix("").exists():
            raise
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


PROBE_TRIES, PROBE_TIMEOUT = 3, 5.0


def probe_server(uri: str) -> None:
    """A tracking server must answer its health check within a few tries (~20 s at most), a
    PostgreSQL database must accept one connection (MLflow would retry for minutes)."""
    if uri.startswith(("postgresql://", "postgresql+psycopg://")):
        reach_postgres(with_driver(uri))
        return
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    for attempt in range(PROBE_TRIES):
        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT)
            return
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = type(exc).__name__
            if attempt + 1 < PROBE_TRIES:
                time.sleep(2.0)
    raise StoreUnreachable(f"the tracking server {uri} does not answer ({reason} on {PROBE_TRIES} tries); start it "
                           "(recsys-scaling ui, or recsys-scaling server) or fix tracking.uri / MLFLOW_TRACKING_URI")


def reach_postgres(uri: str, timeout: int = 10) -> None:
    """Connect once, without MLflow's retries (minutes against a database that is not there)."""
    if not uri.startswith("postgresql+psycopg://"):
        return
    try:
        import psycopg
    except ImportError:
        raise ValueError(f"{uri}: needs the PostgreSQL driver: pip install 'recsys-scaling[postgres]'") from None
    try:
        psycopg.connect("postgresql://" + uri[len("postgresql+psycopg://"):], connect_timeout=timeout).close()
    except psycopg.Error as exc:
        raise ValueError(f"store {uri}: cannot open it: {' '.join(str(exc).split())[:300]}") from None


# Tables every MLflow store has (any schema version since 1.x); a database holding other tables
# and not these belongs to another program and is never touched.
MLFLOW_TABLES = frozenset({"experiments", "runs", "metrics", "params", "tags", "alembic_version"})


def check_not_foreign(uri: str) -> None:
    """Refuse a database that is not an MLflow store (another program's sqlite file, an Optuna
    study, an app's PostgreSQL schema) before MLflow creates or migrates tables in it: only a
    missing or empty database may become a store. Read-only; the file is left byte for byte."""
    tables = _tables(uri)
    if tables and not MLFLOW_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        where = sqlite_path(uri) or uri
        raise ValueError(f"{where}: not an MLflow store (it holds another program's tables: {shown}); left untouched: "
                         "point tracking.uri at a new file or an empty database")


def _tables(uri: str) -> frozenset:
    path = sqlite_path(uri)
    if path is not None:
        if not path.is_file() or path.stat().st_size == 0:
            return frozenset()
        import sqlite3

        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            finally:
                connection.close()
        except sqlite3.DatabaseError:
            return frozenset()  # not a database at all: MLflow's own error names it (unusable_store_error)
        return frozenset(r[0] for r in rows if not r[0].startswith("sqlite_"))
    if uri.startswith("postgresql+psycopg://"):
        import psycopg

        with psycopg.connect("postgresql://" + uri[len("postgresql+psycopg://"):], connect_timeout=10) as connection:
            rows = connection.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                      "current_schema() AND table_type = 'BASE TABLE'").fetchall()
        return frozenset(r[0] for r in rows)
    return frozenset()


def sqlite_path(uri: str) -> Optional[Path]:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def artifact_location(uri: str, experiment: str) -> Optional[str]:
    """Where a new experiment of a sqlite store keeps its artifacts: beside the store file, not in
    the current folder (MLflow's default), so the store and its artifacts move and archive together.
    None elsewhere (a server or a database store decides)."""
    import re

    path = sqlite_path(uri)
    if path is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-.") or "experiment"
    return (path.parent / "mlruns" / slug).as_uri()


def read_only_store(uri: str) -> bool:
    """A sqlite store that can be read but not written (an archived copy, a read-only mount)."""
    import os

    path = sqlite_path(uri)
    return path is not None and path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def is_read_only_error(exc: BaseException) -> bool:
    """A write refused because the store or its artifact folder is read-only."""
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return True
    text = str(exc).lower()
    return "readonly database" in text or "read-only file system" in text


def unusable_store_error(uri: str, exc: Exception) -> Exception:
    """An error opening a store, as one line when the store's file is at fault."""
    text = " ".join(str(exc).split())
    if not uri.startswith("sqlite:///"):
        return exc
    path = uri[len("sqlite:///"):]
    if "disk is full" in text or "No space left" in text:
        return OSError(errno.ENOSPC, "No space left on device: the tracking store cannot be written", path)
    if "file is not a database" in text or "malformed" in text:
        return ValueError(f"{path}: not an MLflow store (sqlite says: file is not a database, or it is damaged); "
                          "move it aside and a new store is made, or point tracking.uri at another")
    if "readonly" in text or "unable to open database file" in text or "read-only" in text:
        return ValueError(f"{path}: the store cannot be written there (read-only or no permission); point "
                          "tracking.uri at a writable folder")
    return exc


def with_driver(uri: str) -> str:
    """postgresql://... with the driver the `postgres` extra installs (psycopg 3); SQLAlchemy
    would otherwise look for psycopg2."""
    return "postgresql+psycopg://" + uri[len("postgresql://"):] if uri.startswith("postgresql://") else uri
