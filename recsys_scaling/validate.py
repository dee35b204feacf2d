"""One check of a composed job config before anything runs or records.

`train`, `sweep`, `tune` and `budget` all call `check_job` on every job before a store, a
cache, a run or an output folder exists. A failure is a ConfigError whose message names the key,
says what is wrong and how to fix it, on one line.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from .config import DataKind
from .data.faults import DataError
from .data.files import resolve_files
from .data.formats import check_readable

DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?|mps)$")
STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


class ConfigError(ValueError):
    """A config value that must not run: `key`, what is wrong, how to fix it."""

    def __init__(self, key: str, what: str, fix: str):
        super().__init__(f"{key}: {what}; {fix}")
        self.key = key


# (key, test, what is wrong, how to fix)
Rule = Tuple[str, Callable[[Any], bool], str, str]


def _at_least(low):
    return lambda v: v is not None and v >= low


def _finite_positive(v) -> bool:
    return v is not None and math.isfinite(v) and v > 0


RANGES: List[Rule] = [
    ("train.batch_size", _at_least(1), "must be at least 1", "e.g. train.batch_size=2048"),
    ("train.eval_batch_size", _at_least(1), "must be at least 1", "e.g. train.eval_batch_size=8192"),
    ("train.max_epochs", _at_least(1), "must be at least 1 (0 would record an untrained model)",
     "e.g. train.max_epochs=1"),
    ("train.patience", _at_least(1), "must be at least 1", "e.g. train.patience=3"),
    ("train.lr", _finite_positive, "must be a positive number", "e.g. train.lr=0.001"),
    ("train.weight_decay", lambda v: math.isfinite(v) and v >= 0, "must be >= 0", "e.g. train.weight_decay=1e-6"),
    ("train.prefetch", _at_least(0), "must be >= 0", "0 turns prefetching off"),
    ("train.threads", _at_least(0), "must be >= 0", "0 picks the threads per job automatically"),
    ("train.device", lambda v: bool(DEVICE.match(str(v))), "is not a device", "use cpu, cuda, cuda:N or auto"),
    ("train.data_on_device", lambda v: str(v).lower() in ("auto", "true", "false"), "must be auto, true or false",
     "auto keeps the data on a GPU when it fits"),
    ("train.jobs_per_gpu", _at_least(1), "must be at least 1", "e.g. train.jobs_per_gpu=2"),
    ("scale", _at_least(1), "must be at least 1", "scale=1 is the base model"),
    ("seed", lambda v: v is not None and 0 <= v < 2**32, "must be in [0, 2**32) (numpy's and torch's seed range)",
     "e.g. seed=0"),
    ("model.base_dim", _at_least(1), "must be at least 1", "the paper's d0 is 10 (NFwFM: 50)"),
    ("model.num_embeddings", lambda v: v is None or v >= 1, "must be at least 1 (or null)",
     "null follows from arm and scale"),
    ("model.embed_dim", lambda v: v is None or v >= 1, "must be at least 1 (or null)",
     "null follows from arm and scale"),
    ("model.hidden", _at_least(1), "must be at least 1", "e.g. model.hidden=400"),
    ("model.dropout", lambda v: 0 <= v < 1, "must be in [0, 1)", "e.g. model.dropout=0.2"),
    ("model.cross_layers", _at_least(0), "must be >= 0", "e.g. model.cross_layers=4"),
    ("model.cin_layers", lambda v: all(n >= 1 for n in v), "every layer needs at least 1 map",
     "e.g. model.cin_layers=[16,16]"),
    ("budget.tolerance", lambda v: math.isfinite(v) and v >= 0, "must be >= 0", "e.g. budget.tolerance=0.02"),
    ("budget.targets", lambda v: all(t >= 1 for t in v), "every target must be a positive parameter count",
     "e.g. budget.targets=[1e6,2e6]"),
    ("data.train_fraction", lambda v: math.isfinite(v) and 0 < v <= 1, "must be in (0, 1]",
     "e.g. data.train_fraction=0.25 trains on a quarter of the training split"),
    ("data.max_bad_fraction", lambda v: math.isfinite(v) and 0 <= v <= 1, "must be in [0, 1]",
     "e.g. data.max_bad_fraction=0.2 skips up to a fifth of the rows"),
    ("data.min_count", _at_least(1), "must be at least 1", "1 keeps every value"),
    ("data.declared_rows", lambda v: v is None or v >= 1, "must be a positive row count (or null)",
     "e.g. data.declared_rows=45840617"),
    ("data.min_class_rows", _at_least(0), "must be >= 0", "0 turns the check of the splits' labels off"),
    ("data.split", lambda v: len(v) == 3 and all(f > 0 for f in v) and abs(sum(v) - 1) < 1e-6,
     "needs three positive fractions (train, valid, test) summing to 1", "e.g. data.split=[0.8,0.1,0.1]"),
    ("report.margin", _finite_positive, "must be a positive number (AUC units)",
     "e.g. report.margin=0.0005, the smallest AUC difference that matters to you"),
    ("report.ia_margin", _finite_positive, "must be a positive number (IA units)", "e.g. report.ia_margin=1.0"),
    ("diagnostics.max_rows", _at_least(1), "must be at least 1", "e.g. diagnostics.max_rows=10000"),
    ("diagnostics.every_n_epochs", _at_least(0), "must be >= 0", "0 computes them only at the end"),
    ("tracking.experiment", lambda v: bool(str(v).strip()), "must not be empty", "e.g. tracking.experiment=recsys-scaling"),
]
SYNTHETIC_RANGES: List[Rule] = [
    ("data.synthetic.rows", _at_least(100), "must be at least 100", "e.g. data.synthetic.rows=20000"),
    ("data.synthetic.cardinalities", lambda v: len(v) >= 2 and all(c >= 1 for c in v),
     "needs at least 2 fields, each with at least 1 value", "e.g. data.synthetic.cardinalities=[3,10,50,1000]"),
    ("data.synthetic.teacher_rank", _at_least(1), "must be at least 1", "e.g. data.synthetic.teacher_rank=16"),
    ("data.synthetic.positive_rate", lambda v: 0 < v < 1, "must be in (0, 1)", "e.g. data.synthetic.positive_rate=0.25"),
]


def check_job(cfg: DictConfig) -> None:
    """Every check, in order: values that are required and missing, keys the schema does not
    know, value ranges, the store URI, the data source. Raises ConfigError on the first failure."""
    check_required(cfg)
    check_known_keys(cfg)
    rules = RANGES + (SYNTHETIC_RANGES if cfg.data.kind == DataKind.synthetic else [])
    for rule in rules:
        _check_rule(rule, OmegaConf.select(cfg, rule[0]))
    check_store_uri(cfg.tracking.uri)
    check_folder("data.cache_dir", cfg.data.cache_dir, "RECSYS_SCALING_CACHE")
    if cfg.train.checkpoint:
        check_folder("train.checkpoint_dir", cfg.train.checkpoint_dir, "RECSYS_SCALING_CHECKPOINTS")
    check_data_source(cfg.data)


def check_value(**values: Any) -> None:
    """The range rules of these top-level keys (`check_value(seed=7)`); ConfigError if one fails."""
    for rule in RANGES:
        if rule[0] in values:
            _check_rule(rule, values[rule[0]])


def _check_rule(rule: Rule, value: Any) -> None:
    key, test, what, fix = rule
    try:
        ok = test(value)
    except TypeError:
        ok = False
    if not ok:
        raise ConfigError(f"{key}={_shown(value)}", what, fix)


REQUIRED_FIXES = {"data.path": "the raw file, e.g. data.path=/data/criteo/train.txt (or data=synthetic)"}


def _missing(node: Any, prefix: str = "") -> Iterator[str]:
    for key in node.keys():
        if key == "hydra":
            continue
        if OmegaConf.is_missing(node, key):
            yield f"{prefix}{key}"
        elif OmegaConf.is_dict(node._get_node(key)):
            yield from _missing(node._get_node(key), f"{prefix}{key}.")


def check_required(cfg: DictConfig) -> None:
    """A value the config leaves to the user (`???`), such as data.path of a raw dataset."""
    for key in _missing(cfg):
        kind = OmegaConf.select(cfg, "data.kind") if key.startswith("data.") else None
        raise ConfigError(key, f"required{f' for data.kind={kind}' if kind else ''}, and not given",
                          f"give {REQUIRED_FIXES.get(key, key + '=...')}")


def _shown(value: Any) -> str:
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown(node: Any, prefix: str) -> Iterator[str]:
    schema = OmegaConf.get_type(node) if OmegaConf.is_dict(node) else None
    if not OmegaConf.is_dict(node):
        return
    known = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in node.keys():
        if known is not None and key not in known:
            yield _first_leaf(node._get_node(key), f"{prefix}{key}")
        else:
            yield from _unknown(node._get_node(key), f"{prefix}{key}.")


def _first_leaf(node: Any, path: str) -> str:
    while OmegaConf.is_dict(node) and len(node):
        key = next(iter(node.keys()))
        node, path = node._get_node(key), f"{path}.{key}"
    return path


def check_known_keys(cfg: DictConfig) -> None:
    """Keys added with `+key=value` that the schema does not have (a typo Hydra lets through)."""
    for key in _unknown(cfg, ""):
        if key == "hydra" or key.startswith("hydra."):
            continue
        near = _closest(key)
        raise ConfigError(key, "not a config key", f"did you mean {near}?" if near else
                          "`recsys-scaling train --help` lists the keys")


def _schema_keys(schema: type, prefix: str = "") -> Iterator[str]:
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _schema_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def _closest(key: str) -> Optional[str]:
    import difflib

    from .config import Config

    found = difflib.get_close_matches(key, list(_schema_keys(Config)), n=1, cutoff=0.75)
    return found[0] if found else None


def check_folder(key: str, folder: str, variable: Optional[str], shown: Optional[str] = None) -> None:
    """A folder the job writes to: a folder (not a file) that can be written, or one that can be
    created in a writable parent. `variable`: the environment variable that also sets it."""
    path = Path(str(folder)).expanduser().absolute()
    fix = f"point {key} (or ${variable}) at a writable folder" if variable else \
        f"point {key} at a writable folder (or run from one)"
    name = f"{key}={_shown(shown or folder)}"
    if path.exists() and not path.is_dir():
        raise ConfigError(name, "is a file, not a folder", fix)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(name, f"{existing} is a file, not a folder", fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(name, f"{existing} cannot be written (read-only or no permission)", fix)


def check_hydra_dir(cfg: DictConfig, key: str) -> None:
    """Hydra's output folder (hydra.run.dir of a job, hydra.sweep.dir of a sweep) can be made:
    its fixed part (up to the first interpolation, e.g. `multirun/` of
    multirun/${sweep.name}/...) is checked as check_folder does, before anything is recorded."""
    text = str(OmegaConf.to_container(cfg.hydra, resolve=False)[key.split(".")[1]]["dir"])
    fixed = text.split("${", 1)[0]
    folder = fixed if fixed.endswith("/") or "${" not in text else os.path.dirname(fixed)
    check_folder(key, folder or ".", None, shown=text)


def check_store_uri(uri: Optional[str]) -> None:
    """A tracking URI MLflow can use: sqlite:///FILE in an existing folder, a database URL, or a
    server http(s)://HOST:PORT. (No file store: MLflow 3 no longer supports it.)"""
    resolved = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not resolved:
        return
    key = "tracking.uri" if uri else "MLFLOW_TRACKING_URI"
    fix = "use sqlite:///mlflow.db, postgresql://USER@HOST/DB or http://HOST:PORT"
    parsed = urlparse(resolved)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in STORE_SCHEMES:
        raise ConfigError(f"{key}={_shown(resolved)}", "not a tracking store URI", fix)
    if scheme == "sqlite":
        if not resolved.startswith("sqlite:///") or len(resolved) == len("sqlite:///"):
            raise ConfigError(f"{key}={_shown(resolved)}", "a sqlite store is sqlite:///FILE", fix)
        file = Path(resolved[len("sqlite:///"):]).expanduser().resolve()
        folder = file.parent
        if not folder.is_dir():
            raise ConfigError(f"{key}={_shown(resolved)}", f"folder {folder} does not exist",
                              "create it or point at an existing folder")
        if not os.access(folder, os.W_OK) or (file.exists() and not os.access(file, os.W_OK)):
            raise ConfigError(f"{key}={_shown(resolved)}", f"{file} cannot be written (read-only or no permission)",
                              "point it at a writable folder")
    elif scheme in ("http", "https") and not parsed.hostname:
        raise ConfigError(f"{key}={_shown(resolved)}", "no host", "use http://HOST:PORT")


def check_data_source(data_cfg: DictConfig) -> None:
    """The raw data files exist, are files and can be read (synthetic data is generated): data.path
    a file, a folder of files, a glob or a list of them, data.days among them."""
    if data_cfg.kind == DataKind.synthetic:
        return
    if OmegaConf.is_missing(data_cfg, "path") or not data_cfg.path:
        raise ConfigError("data.path", f"required for data.kind={data_cfg.kind}", "data.path=/path/to/file")
    shown = f"data.path={_shown(data_cfg.path)}"
    days = list(data_cfg.days) if data_cfg.get("days") is not None else None
    try:
        files = resolve_files(data_cfg.path, days)
    except DataError as exc:
        if str(exc).startswith("data.days"):
            raise ConfigError("data.days", _reason(exc, data_cfg.path), "choose days the folder has") from None
        raise ConfigError(shown, _reason(exc, data_cfg.path), "check the path (a file, a folder of files, a glob, "
                          "or a list of them)") from None
    for found in files:
        where = "" if len(files) == 1 else f"{found.path}: "
        if not os.access(found.path, os.R_OK):
            raise ConfigError(shown, f"{where}not readable", "check its permissions")
        try:
            check_readable(found.path)
        except DataError as exc:
            raise ConfigError(shown, where + str(exc).split(": ", 1)[-1].split(";")[0],
                              "give a CSV/TSV (optionally .gz) or a Parquet file") from None


def _reason(exc: DataError, path_value) -> str:
    """The error without its leading path when that path is data.path itself."""
    text = str(exc)
    for prefix in (str(Path(str(path_value)).expanduser()), "data.path", f"data.path={path_value}", "data.days"):
        if text.startswith(prefix + ": "):
            return text[len(prefix) + 2:]
    return text