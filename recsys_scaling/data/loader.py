"""Batches gathered by index from the encoded memmaps; torch tensors out.

Training order is a seeded permutation, redrawn every epoch; evaluation is sequential.
DeviceBatches draws the same batches from tensors already on the training device (a GPU holding
the whole encoded dataset), with no host copy per batch.
Each batch reads its rows from the memmaps in ascending order (sorted within the batch),
so memory beyond the memmaps stays O(batch) and disk reads stay local. With `prefetch` > 0 the
next batches are gathered in a background thread while the model trains on this one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Tuple

import numpy as np
import torch

from .prefetch import prefetched


@dataclass
class BatchLoader:
    X: np.ndarray
    y: np.ndarray
    indices: np.ndarray
    batch_size: int
    shuffle: bool = False
    seed: int = 0
    prefetch: int = 0
    pin_memory: bool = False  # page-locked batches, for asynchronous copies to a GPU

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def epoch(self, epoch: int = 0) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        batches = self._batches(epoch)
        return prefetched(batches, self.prefetch) if self.prefetch > 0 else batches

    def _batches(self, epoch: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(self.indices, self.seed, epoch) if self.shuffle else self.indices
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            if self.shuffle:
                rows = np.sort(rows)
            x, y = torch.from_numpy(np.ascontiguousarray(self.X[rows])), torch.from_numpy(
                np.ascontiguousarray(self.y[rows]))
            yield (x.pin_memory(), y.pin_memory()) if self.pin_memory else (x, y)


def epoch_order(indices: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The training order of an epoch: a permutation seeded by (seed, epoch)."""
    return indices[np.random.default_rng([seed, epoch]).permutation(len(indices))]


@dataclass
class DeviceBatches:
    """The batches of BatchLoader (same rows, same order, same seed) drawn by index from X and y
    already on the device."""

    X: torch.Tensor
    y: torch.Tensor
    indices: np.ndarray
    batch_size: int
    shuffle: bool = False
    seed: int = 0

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def epoch(self, epoch: int = 0) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(self.indices, self.seed, epoch) if self.shuffle else self.indices
        order = torch.from_numpy(np.ascontiguousarray(order)).to(self.X.device)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            if self.shuffle:
                rows = torch.sort(rows).values
            yield self.X[rows], self.y[rows]
