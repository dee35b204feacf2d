"""Batches gathered by index from the encoded memmaps; torch tensors out.

Training order is a seeded permutation, redrawn every epoch; evaluation is sequential.
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

    def __len__(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def epoch(self, epoch: int = 0) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        batches = self._batches(epoch)
        return prefetched(batches, self.prefetch) if self.prefetch > 0 else batches

    def _batches(self, epoch: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices
        if self.shuffle:
            order = order[np.random.default_rng([self.seed, epoch]).permutation(len(order))]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            if self.shuffle:
                rows = np.sort(rows)
            yield torch.from_numpy(np.ascontiguousarray(self.X[rows])), torch.from_numpy(
                np.ascontiguousarray(self.y[rows])
            )
