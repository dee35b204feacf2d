"""Data layer: encoded caches, the synthetic benchmark, batch loading."""
from .cache import CacheError, EncodedData
from .datasets import data_fingerprint, declared_field_dims, describe, load_dataset, open_prepared, prepared_field_dims
from .faults import DataError
from .loader import BatchLoader, DeviceBatches
from .subsample import nested_subsample, positive_rate, subsample_rows, with_train_fraction

__all__ = ["BatchLoader", "CacheError", "DataError", "DeviceBatches", "EncodedData", "data_fingerprint",
           "declared_field_dims", "describe", "load_dataset", "nested_subsample", "open_prepared", "positive_rate",
           "prepared_field_dims", "subsample_rows", "with_train_fraction"]
