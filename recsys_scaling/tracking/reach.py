"""Reaching a store before using it: a database answers once (no minutes of retries against one
that is not there), a sqlite file to read from exists, and two spellings of one store are known
to be the same store."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

from .opening import reach_postgres, with_driver
from .store import Store, absolute_store


def check_store(uri: str) -> str:
    """Open a database store the way the server will (creating or upgrading MLflow's schema);
    a one-line ValueError when it cannot be reached. Returns the URI with its driver."""
    reach_postgres(with_driver(uri))
    try:
        Store(uri).experiment_id
    except ImportError as exc:
        raise ValueError(f"{uri}: {exc}; install the driver with pip install 'recsys-scaling[postgres]'") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and MLflow raise many kinds; one line for all
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"store {uri}: cannot open it: {first}") from None
    return with_driver(uri)


def check_source(uri: str) -> str:
    """A store to read from: a sqlite file must exist (opening a missing one would create it), a
    database must answer. Returns the URI with its driver."""
    uri = with_driver(absolute_store(uri))
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise FileNotFoundError(f"store {uri}: no such sqlite file (no sweep has been recorded there; run one, or "
                                "give the store that has it)")
    reach_postgres(uri)
    return uri


def existing_store(cfg) -> "Store | None":
    """The job config's store when it exists, else None: a plan or an estimate reads what finished
    before without creating a sqlite file."""
    from ..config import resolve_tracking_uri

    uri = absolute_store(resolve_tracking_uri(cfg.tracking.uri))
    missing = uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists()
    return None if missing else Store.of(cfg)


DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "http": 80, "https": 443}


def store_identity(uri: str) -> Tuple:
    """What a store URI points at, whatever its spelling: a sqlite file by its real path; a
    database by host, port and name (a Unix socket folder counts as the host); a tracking server
    by host and port (localhost and 127.0.0.1 alike)."""
    uri = with_driver(absolute_store(uri))
    if uri.startswith("sqlite:///"):
        return ("sqlite", os.path.realpath(uri[len("sqlite:///"):]))
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
    except Exception:  # noqa: BLE001 - an unparsable URI is only equal to itself
        return ("uri", uri)
    scheme = url.drivername.split("+")[0]
    host = url.host or url.query.get("host") or "localhost"
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    return (scheme, host, url.port or DEFAULT_PORTS.get(scheme), url.database or "")


def check_distinct(source: str, dest: str) -> None:
    """Copying a store into itself would duplicate every run: refuse, whatever the spelling."""
    if store_identity(source) == store_identity(dest):
        raise ValueError(f"store copy: {source} and {dest} are the same store; copying it into itself would "
                         "duplicate every run")
