"""One training job: data -> model -> Adam with early stopping on validation AUC -> test metrics.

Tracking is injected (an object with `log_epoch`), so this module knows nothing about MLflow.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Protocol

import numpy as np
import torch
from torch import nn

from .data import BatchLoader, DeviceBatches, EncodedData
from .device import autocast, keep_data_on_device, matmul_precision, warn_if_slow_precision
from .metrics import log_loss, roc_auc
from .runtime import stop_if_interrupted

log = logging.getLogger(__name__)


class EpochLogger(Protocol):
    def log_epoch(self, epoch: int, metrics: Dict[str, float]) -> None: ...


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    valid_auc: float
    valid_logloss: float
    test_auc: float
    test_logloss: float
    train_seconds: float
    history: List[Dict[str, float]] = field(default_factory=list)

    def final_metrics(self) -> Dict[str, float]:
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "best_valid_auc": self.valid_auc,
            "best_valid_logloss": self.valid_logloss,
            "test_auc": self.test_auc,
            "test_logloss": self.test_logloss,
            "train_seconds": self.train_seconds,
        }


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, precision: str = "fp32") -> Dict[str, float]:
    model.eval()
    probabilities, labels = [], []
    for x, y in loader.epoch():
        with autocast(precision, device):
            logits = model(x.to(device, non_blocking=True))
        probabilities.append(torch.sigmoid(logits.float()).cpu().numpy())
        labels.append(y.cpu().numpy())
    p, y = np.concatenate(probabilities), np.concatenate(labels)
    return {"auc": roc_auc(y, p), "logloss": log_loss(y, p)}


def make_optimizers(model: nn.Module, train_cfg) -> List[torch.optim.Optimizer]:
    """Adam over everything (the paper), or with train.sparse_embedding: SparseAdam on the
    embedding table (only the rows in a batch are updated, no weight decay on them) and Adam
    on the dense part. Adam runs its fused kernel (same update, 1.5x faster step on CPU)."""
    def adam(params):
        return torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay, fused=True)

    if not train_cfg.sparse_embedding:
        return [adam(model.parameters())]
    table = model.embedding.table
    table.sparse = True
    dense = [p for p in model.parameters() if p is not table.weight]
    return [adam(dense), torch.optim.SparseAdam([table.weight], lr=train_cfg.lr)]


def train_epoch(model, loader, optimizers, epoch: int, device, progress: bool, precision: str = "fp32") -> float:
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    total, count = 0.0, 0
    batches = loader.epoch(epoch)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, total=len(loader), desc=f"epoch {epoch}", unit="batch", leave=False)
    for x, y in batches:
        stop_if_interrupted()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        with autocast(precision, device):
            logits = model(x.to(device, non_blocking=True))
        loss = loss_fn(logits.float(), y.to(device, non_blocking=True))
        value = loss.item()  # one device sync per step, shared by the check and the running mean
        if not math.isfinite(value):
            raise NonFiniteLossError(f"non-finite training loss {value} in epoch {epoch}")
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        total += value * len(y)
        count += len(y)
    return total / max(count, 1)


@dataclass
class TrainState:
    """Everything an interrupted run needs to continue exactly where its last epoch ended."""

    next_epoch: int = 0
    best_auc: float = -math.inf
    best_epoch: int = -1
    best_valid: Dict[str, float] = field(default_factory=dict)
    best_state: Optional[dict] = None
    stale: int = 0
    history: List[Dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0


class Checkpoint:
    """The state after the last finished epoch, written atomically to one file."""

    def __init__(self, path: Optional[Path]):
        self.path = path

    def load(self, model: nn.Module, optimizers) -> Optional[TrainState]:
        """The saved state, restored into `model` and `optimizers`; None when there is none. A
        checkpoint that cannot be read (cut short, damaged, or of another model) is set aside as
        *.corrupt with a warning, and the job starts over."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, weights_only=False)
            model.load_state_dict(saved["model"])
            for optimizer, state in zip(optimizers, saved["optimizers"]):
                optimizer.load_state_dict(state)
            torch.set_rng_state(saved["torch_rng"])
            return saved["state"]
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
            aside = self._set_aside()
            log.warning("checkpoint %s cannot be read (%s: %s); set aside as %s, the job starts over", self.path,
                        type(exc).__name__, " ".join(str(exc).split())[:150], aside.name)
            return None

    def _set_aside(self) -> Path:
        aside = self.path.with_name(self.path.name + ".corrupt")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt{n}")
        self.path.replace(aside)
        return aside

    def save(self, model: nn.Module, optimizers, state: TrainState) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        try:
            torch.save({"model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers],
                        "torch_rng": torch.get_rng_state(), "state": state}, tmp)
            tmp.replace(self.path)
        except (OSError, RuntimeError) as exc:  # a full disk shows as either (torch's writer raises RuntimeError)
            tmp.unlink(missing_ok=True)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())[:150]
            raise OSError(getattr(exc, "errno", None) or 0, f"cannot write the checkpoint ({why}); free some space, "
                          "or set train.checkpoint=false", str(self.path)) from None

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def fit(
    model: nn.Module,
    data: EncodedData,
    train_cfg,
    seed: int,
    logger: Optional[EpochLogger] = None,
    on_epoch_end: Optional[Callable[[int, Dict[str, float]], None]] = None,
    checkpoint: Optional[Checkpoint] = None,
) -> FitResult:
    """Adam on the training split; early stopping (patience) on validation AUC; test metrics of
    the best-validation epoch. With a checkpoint, every finished epoch is saved and a run that
    was killed continues from its last one (the epoch's shuffling is seeded by (seed, epoch)
    and the dropout RNG is restored, so the result equals an uninterrupted run)."""
    device = torch.device(train_cfg.device)
    model.to(device)
    optimizers = make_optimizers(model, train_cfg)
    train_loader, valid_loader, test_loader = make_loaders(data, train_cfg, seed, device)
    runner = compiled(model) if train_cfg.compile else model
    precision = train_cfg.precision
    warn_if_slow_precision(precision, device)
    with matmul_precision(precision):
        return _fit(model, runner, optimizers, (train_loader, valid_loader, test_loader), data, train_cfg,
                    device, precision, logger, on_epoch_end, checkpoint)


def make_loaders(data: EncodedData, train_cfg, seed: int, device: torch.device):
    """Train, valid and test batches: from the dataset on the device when it is kept there,
    else from host memory (pinned on a GPU)."""
    on_device, why = keep_data_on_device(train_cfg.data_on_device, data.X.nbytes + data.y.nbytes,
                                         device)
    log.info(why)
    if on_device:
        X, y = on(device, data.X), on(device, data.y)
        return (DeviceBatches(X, y, data.splits["train"], train_cfg.batch_size, shuffle=True, seed=seed),
                DeviceBatches(X, y, data.splits["valid"], train_cfg.eval_batch_size),
                DeviceBatches(X, y, data.splits["test"], train_cfg.eval_batch_size))
    pin = device.type == "cuda"
    return (BatchLoader(data.X, data.y, data.splits["train"], train_cfg.batch_size, shuffle=True, seed=seed,
                        prefetch=train_cfg.prefetch, pin_memory=pin),
            BatchLoader(data.X, data.y, data.splits["valid"], train_cfg.eval_batch_size, pin_memory=pin),
            BatchLoader(data.X, data.y, data.splits["test"], train_cfg.eval_batch_size, pin_memory=pin))


def on(device: torch.device, array: np.ndarray) -> torch.Tensor:
    """A (read-only, memory-mapped) array as a tensor on the device; only ever read."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.asarray(array)).to(device)


def compiled(model: nn.Module) -> nn.Module:
    """The model through torch.compile for training steps (same parameters; compiles on its
    first batches). Evaluation stays eager: its few large batches would each cost a compile."""
    log.info("torch.compile: the first training batches compile the model")
    return torch.compile(model)


def _fit(model, runner, optimizers, loaders, data, train_cfg, device, precision, logger, on_epoch_end,
         checkpoint) -> FitResult:
    train_loader, valid_loader, test_loader = loaders
    checkpoint = checkpoint or Checkpoint(None)
    state = checkpoint.load(model, optimizers) or TrainState()
    if state.next_epoch:
        log.info("resuming from the checkpoint after epoch %d", state.next_epoch - 1)
        for epoch, metrics in enumerate(state.history):
            if logger is not None:
                logger.log_epoch(epoch, metrics)
    for epoch in range(state.next_epoch, train_cfg.max_epochs):
        if state.stale >= train_cfg.patience:
            break
        epoch_start = time.perf_counter()
        train_loss = train_epoch(runner, train_loader, optimizers, epoch, device, train_cfg.progress, precision)
        seconds = time.perf_counter() - epoch_start
        valid = evaluate(model, valid_loader, device, precision)
        metrics = {
            "train_logloss": train_loss,
            "valid_auc": valid["auc"],
            "valid_logloss": valid["logloss"],
            "epoch_seconds": seconds,
            "train_samples_per_second": len(data.splits["train"]) / max(seconds, 1e-9),
        }
        state.history.append(metrics)
        state.train_seconds += seconds
        if logger is not None:
            logger.log_epoch(epoch, metrics)
        log.info("epoch %d: train logloss %.5f, valid AUC %.5f, logloss %.5f",
                 epoch, train_loss, valid["auc"], valid["logloss"])
        if valid["auc"] > state.best_auc:
            state.best_auc, state.best_epoch, state.best_valid, state.stale = valid["auc"], epoch, valid, 0
            state.best_state = copy.deepcopy(model.state_dict())
        else:
            state.stale += 1
        state.next_epoch = epoch + 1
        checkpoint.save(model, optimizers, state)
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
        if state.stale >= train_cfg.patience:
            log.info("early stop after epoch %d (best %d)", epoch, state.best_epoch)
            break
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    test = evaluate(model, test_loader, device, precision)
    return FitResult(
        best_epoch=state.best_epoch,
        epochs_run=len(state.history),
        valid_auc=state.best_valid.get("auc", float("nan")),
        valid_logloss=state.best_valid.get("logloss", float("nan")),
        test_auc=test["auc"],
        test_logloss=test["logloss"],
        train_seconds=state.train_seconds,
        history=state.history,
    )
