"""Data layer: encoded caches, the synthetic benchmark, batch loading."""
from __future__ import annotations

from typing import List, Optional

from omegaconf import OmegaConf

from .cache import CacheError, EncodedData, cache_path, fingerprint, open_cache
from .formats import DataError
from .loader import BatchLoader
from .prepare import prepare_dataset, prepare_settings
from .synthetic import synthetic_dataset

__all__ = ["BatchLoader", "DataError", "EncodedData", "declared_field_dims", "load_dataset"]


def declared_field_dims(data_cfg) -> Optional[List[int]]:
    """Vocabulary sizes known without reading data: declared ones, or the synthetic generator's."""
    if data_cfg.field_dims:
        return [int(v) for v in data_cfg.field_dims]
    if data_cfg.kind == "synthetic":
        return [int(v) for v in data_cfg.synthetic.cardinalities]
    return prepared_field_dims(data_cfg)


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
    return synthetic_dataset(data_cfg.name, synthetic, list(data_cfg.split), data_cfg.cache_dir, progress)
