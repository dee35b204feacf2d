"""A data config's dataset: opened or prepared (raw files) or generated (synthetic), described,
and identified by content (the fingerprint every job's identity includes)."""
from __future__ import annotations

from typing import List, Optional

from omegaconf import OmegaConf

from .cache import CacheError, EncodedData, cache_path, fingerprint, open_cache
from .faults import DataError, check_labels
from .prepare import prepare_dataset, prepare_settings
from .splits import split_description
from .synthetic import synthetic_dataset, synthetic_settings



def declared_field_dims(data_cfg) -> Optional[List[int]]:
    """Vocabulary sizes known without reading data: declared ones, or the synthetic generator's."""
    if data_cfg.field_dims:
        return [int(v) for v in data_cfg.field_dims]
    if data_cfg.kind == "synthetic":
        return [int(v) for v in data_cfg.synthetic.cardinalities]
    return prepared_field_dims(data_cfg)


def open_prepared(data_cfg) -> EncodedData:
    """The existing cache of a data config (synthetic data is generated when missing)."""
    if data_cfg.kind == "synthetic":
        return load_dataset(data_cfg)
    settings = prepare_settings(data_cfg)
    path = cache_path(data_cfg.cache_dir, data_cfg.name, settings)
    try:
        return open_cache(path, fingerprint(settings))
    except CacheError as exc:
        raise DataError(f"{data_cfg.path}: no valid cache ({exc}); run `recsys-scaling data prepare`") from exc


def describe(data: EncodedData) -> str:
    """A human-readable summary: where, how many rows, fields and their sizes, bad rows."""
    meta = data.meta
    lines = [f"cache: {data.path}",
             f"rows: {meta['rows']:,} (train {meta['split_rows']['train']:,}, valid {meta['split_rows']['valid']:,}, "
             f"test {meta['split_rows']['test']:,}); positive rate {meta['positive_rate']:.4f}",
             f"fields: {len(data.field_dims)}, vocabulary rows: {sum(data.field_dims):,}",
             "field_dims: " + ", ".join(f"{n}={d}" for n, d in zip(data.field_names, data.field_dims))]
    if meta.get("inputs"):
        lines.insert(1, f"files: {len(meta['inputs'])}; split: {split_description(meta)}")
    oracle = meta.get("oracle")
    if oracle:
        truncated = ", ".join(f"width {w}: {auc:.4f}" for w, auc in oracle["truncated_auc"].items())
        lines.append(f"oracle test AUC: Bayes {oracle['bayes_auc']:.4f}; teacher (rank {oracle['teacher_rank']}) "
                     f"truncated to {truncated or 'no smaller width'}")
    bad = meta.get("bad_rows") or {}
    counted = {k: v for k, v in bad.items() if v["count"]}
    lines.append("bad rows: " + ("none" if not counted else "; ".join(
        f"{k} {v['count']} (first lines {', '.join(_where(v))})" for k, v in counted.items())))
    return "\n".join(lines)


def _where(bad: dict) -> List[str]:
    """A kind's first bad lines, as file:line when the data has several files."""
    lines = bad["first_lines"]
    return [f"{f}:{line}" for f, line in zip(bad["files"], lines)] if bad.get("files") else list(map(str, lines))


def prepared_field_dims(data_cfg) -> Optional[List[int]]:
    """field_dims of an already prepared, still valid cache of this config; None if there is none."""
    try:
        settings = prepare_settings(data_cfg)
        return open_cache(cache_path(data_cfg.cache_dir, data_cfg.name, settings), fingerprint(settings)).field_dims
    except (CacheError, DataError, OSError):
        return None


def load_dataset(data_cfg, progress: bool = False) -> EncodedData:
    """Open (building if needed) the encoded cache a data config describes."""
    if data_cfg.kind != "synthetic":
        return prepare_dataset(data_cfg, progress)
    synthetic = OmegaConf.to_object(data_cfg.synthetic)
    data = synthetic_dataset(data_cfg.name, synthetic, list(data_cfg.split), data_cfg.cache_dir, progress)
    check_labels(data.y, data.splits, f"synthetic data {data_cfg.name}", int(data_cfg.min_class_rows))
    return data


def data_fingerprint(data_cfg, progress: bool = False) -> str:
    """The identity of a data config's data by content: its cache's fingerprint (the input
    file's bytes and the preprocessing settings; or the generator, its version and the split).
    Part of every job's fingerprint, so changed data never reuses runs of the old data."""
    if data_cfg.kind == "synthetic":
        return fingerprint(synthetic_settings(OmegaConf.to_object(data_cfg.synthetic), list(data_cfg.split)))
    return fingerprint(prepare_settings(data_cfg, progress))
