"""Where and how a job computes: GPU slots for several jobs per GPU, the training data on the
device, mixed precision, and the memory a job needs (to refuse a packing that cannot fit)."""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import torch

from .config import Precision, choice

log = logging.getLogger(__name__)
# What a CUDA process holds before its first tensor (context, kernels) plus allocator slack.
CUDA_CONTEXT_BYTES = 600 * 2**20
ALLOCATOR_SLACK = 1.10
DATA_SHARE_OF_FREE_MEMORY = 0.5  # data_on_device=auto: the dataset may take half the free memory


# -- several jobs per GPU ---------------------------------------------------------------------------
def slots_folder() -> Path:
    return Path(os.environ.get("RECSYS_SCALING_GPU_SLOTS") or
                Path(tempfile.gettempdir()) / f"recsys-scaling-gpu-slots-{os.getuid()}")


@contextlib.contextmanager
def gpu_slot(gpus: int, per_gpu: int, folder: Optional[Path] = None,
             poll_seconds: float = 1.0) -> Iterator[int]:
    """Hold one of the `per_gpu` slots of one of `gpus` GPUs while the job runs; yields the GPU's
    index. Slots are file locks, so jobs of any launcher on this machine share them, and a killed
    job's slot frees itself. The least busy GPU is taken first; with every slot busy it waits."""
    import fcntl

    folder = folder or slots_folder()
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for slot in range(per_gpu):  # slot-major: one job on each GPU before a second on any
            for gpu in range(gpus):
                handle = open(folder / f"gpu{gpu}.slot{slot}.lock", "a")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                try:
                    yield gpu
                finally:
                    handle.close()
                return
        if not waited:
            log.info("all %d GPU slots (%d GPUs x %d jobs) are busy; waiting for one", gpus * per_gpu, gpus, per_gpu)
            waited = True
        time.sleep(poll_seconds)


def visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# -- training data on the device --------------------------------------------------------------------
def keep_data_on_device(setting: str, data_bytes: int, device: torch.device) -> Tuple[bool, str]:
    """Whether the encoded dataset lives on the training device, and why (for the log)."""
    setting = str(setting).lower()
    size = f"{data_bytes / 2**30:.2f} GiB"
    if setting == "true":
        return True, f"data on {device} ({size}; train.data_on_device=true)"
    if setting == "false":
        return False, f"data in host memory ({size}; train.data_on_device=false)"
    if device.type != "cuda":
        return False, f"data in host memory ({size}; the device is {device})"
    free, _ = torch.cuda.mem_get_info(device)
    if data_bytes <= DATA_SHARE_OF_FREE_MEMORY * free:
        return True, f"data on {device} ({size} of {free / 2**30:.1f} GiB free)"
    return False, f"data in pinned host memory ({size} is more than half of {free / 2**30:.1f} GiB free on {device})"


# -- precision --------------------------------------------------------------------------------------
@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """TF32 matmuls for precision=tf32 while the job runs (process-wide in torch, so restored)."""
    choice(Precision, precision, "train.precision")
    if precision != Precision.tf32:
        yield
        return
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); without, torch emulates
    bf16 and it runs several times slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # cannot tell: no warning
    return "avx512_bf16" in flags or "amx_bf16" in flags


def warn_if_slow_precision(precision: str, device: torch.device) -> None:
    if precision == Precision.bf16 and device.type == "cpu" and not cpu_has_bf16():
        log.warning("train.precision=bf16 on a CPU without bf16 instructions: torch emulates it, several "
                    "times slower than fp32 (README, \"GPUs\")")


def autocast(precision: str, device: torch.device):
    """bf16 autocast for precision=bf16: matmuls and the towers' layers in bf16, while embedding
    lookups, the parameters and the optimizer state stay fp32 (autocast only casts op inputs)."""
    if precision == Precision.bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- memory a job needs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int  # bytes of the weights
    gradients: int
    optimizer: int  # Adam's two moments
    activations: int  # tensors saved for backward at the batch size

    @property
    def total(self) -> int:
        return int((self.parameters + self.gradients + self.optimizer + self.activations) * ALLOCATOR_SLACK) \
            + CUDA_CONTEXT_BYTES

    def describe(self) -> str:
        gib = 2**30
        return (f"{self.total / gib:.2f} GiB (weights {self.parameters / gib:.2f}, gradients "
                f"{self.gradients / gib:.2f}, Adam {self.optimizer / gib:.2f}, activations "
                f"{self.activations / gib:.2f}, CUDA context and slack)")


def saved_activation_bytes(model: torch.nn.Module, x: torch.Tensor, precision: str = "fp32") -> int:
    """Bytes of the tensors autograd keeps for backward in one training forward (what a step
    holds at its peak beyond the weights and optimizer state)."""
    total = 0

    def pack(tensor: torch.Tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(precision, x.device):
        model(x).float().sum()
    return total


def estimate_memory(build_model, field_dims: Sequence[int], batch_size: int) -> MemoryEstimate:
    """A job's device memory, from the model built on the meta device (shapes only, no memory,
    even for a Criteo-sized table) and one meta forward at the batch size. `build_model` makes
    the model on the current default device. Autocast does not run on the meta device, so bf16
    jobs get the fp32 activations: an upper bound (bf16 keeps some of them at half size)."""
    with torch.device("meta"):
        model = build_model()
        x = torch.zeros(batch_size, len(field_dims), dtype=torch.long)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return MemoryEstimate(parameters=weights, gradients=weights, optimizer=2 * weights,
                          activations=saved_activation_bytes(model, x))


def memory_limit(device: str) -> int:
    """Bytes a job may use: a GPU's memory (cuda), else this machine's RAM, or its cgroup's limit
    when lower (a container)."""
    if device.startswith("cuda"):
        return int(torch.cuda.get_device_properties(0).total_memory)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def check_packing(estimate: MemoryEstimate, jobs_per_gpu: int, device_bytes: int, job: str = "job") -> None:
    """Refuse jobs_per_gpu copies of a job that together exceed the GPU's memory."""
    need = estimate.total * jobs_per_gpu
    if need > device_bytes:
        raise ValueError(
            f"{job}: train.jobs_per_gpu={jobs_per_gpu} needs about {need / 2**30:.1f} GiB on one GPU "
            f"({jobs_per_gpu} x {estimate.describe()}) but it has {device_bytes / 2**30:.1f} GiB; "
            f"lower train.jobs_per_gpu to {max(1, device_bytes // max(estimate.total, 1))} or the batch size")
