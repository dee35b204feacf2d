"""The device side, tested on the CPU: batches drawn from device-resident data, GPU slots for
several jobs per GPU, the memory estimate against a real model, mixed precision, torch.compile."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from recsys_scaling.config import EmbeddingShape, ModelConfig, TrainConfig
from recsys_scaling.data import BatchLoader, DeviceBatches
from recsys_scaling.device import (CUDA_CONTEXT_BYTES, autocast, check_packing, estimate_memory, gpu_slot,
                                   keep_data_on_device, saved_activation_bytes)
from recsys_scaling.models import Shape, build_model
from recsys_scaling.train import fit, make_optimizers

from test_train import model_for, small_data

BACKBONES = ["dnn", "ipnn", "nfwfm", "xdeepfm", "dcnv2", "finalmlp"]
TINY = TrainConfig(batch_size=256, max_epochs=2, patience=5, progress=False)


def test_device_resident_batches_equal_the_host_loader(tmp_path):
    data = small_data(tmp_path)
    X, y = torch.from_numpy(np.array(data.X)), torch.from_numpy(np.array(data.y))
    for shuffle in (True, False):
        host = BatchLoader(data.X, data.y, data.splits["train"], 300, shuffle=shuffle, seed=3)
        device = DeviceBatches(X, y, data.splits["train"], 300, shuffle=shuffle, seed=3)
        assert len(host) == len(device)
        for epoch in (0, 1):
            pairs = list(zip(host.epoch(epoch), device.epoch(epoch), strict=True))
            assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in pairs)
        first, second = (torch.cat([x for x, _ in device.epoch(e)]) for e in (0, 1))
        assert torch.equal(first, second) is not shuffle  # a shuffled epoch has its own order


def test_training_from_device_resident_data_gives_the_same_model(tmp_path):
    data = small_data(tmp_path)
    on_host = fit(model_for(data), data, replace(TINY, data_on_device="false"), seed=0)
    on_device = fit(model_for(data), data, replace(TINY, data_on_device="true"), seed=0)
    assert on_device.test_auc == on_host.test_auc and on_device.history == [
        {**m, "epoch_seconds": d["epoch_seconds"], "train_samples_per_second": d["train_samples_per_second"]}
        for m, d in zip(on_host.history, on_device.history)]


def test_data_on_device_auto_stays_on_the_host_without_a_gpu():
    assert keep_data_on_device("auto", 10**6, torch.device("cpu"))[0] is False
    assert keep_data_on_device("true", 10**6, torch.device("cpu"))[0] is True
    assert keep_data_on_device("False", 10**6, torch.device("cpu"))[0] is False


def test_gpu_slots_spread_jobs_and_cap_each_gpu(tmp_path):
    """2 GPUs x 2 jobs each: four jobs get GPUs 0, 1, 0, 1; a fifth waits until one ends and
    takes its GPU."""
    with contextlib.ExitStack() as held:
        gpus = [held.enter_context(gpu_slot(2, 2, tmp_path, poll_seconds=0.05)) for _ in range(4)]
        assert gpus == [0, 1, 0, 1]
        got = []
        waiter = threading.Thread(target=lambda: got.append(_take_and_release(tmp_path)))
        waiter.start()
        time.sleep(0.5)
        assert not got, "a fifth job found a slot while all four were held"
    waiter.join(timeout=10)
    assert got == [0]


def _take_and_release(folder, gpus: int = 2, per_gpu: int = 2) -> int:
    with gpu_slot(gpus, per_gpu, folder, poll_seconds=0.05) as gpu:
        return gpu


HOLD = """
import sys, time
from pathlib import Path
from recsys_scaling.device import gpu_slot
with gpu_slot(1, 1, Path(sys.argv[1])) as gpu:
    print(gpu, flush=True)
    time.sleep(600)
"""


def test_a_killed_jobs_gpu_slot_frees_itself(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "0"
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(_take_and_release(tmp_path, 1, 1)))
    waiter.start()
    time.sleep(0.5)
    assert not taken
    holder.kill()
    holder.wait()
    waiter.join(timeout=10)
    assert taken == [0]


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_memory_estimate_equals_the_measured_model(backbone, precision):
    """The meta-device estimate against a real model after one training step: weights, gradients
    and Adam state byte for byte; the tensors saved for backward within 2% in fp32, and bounded
    from above in bf16 (which keeps some at half size)."""
    dims, batch = [30, 50, 200, 1000, 7, 300], 512
    shape = Shape(len(dims), EmbeddingShape(4, 10), True)

    def make():
        return build_model(backbone, dims, shape, ModelConfig(backbone=backbone))

    estimate = estimate_memory(make, dims, batch)
    torch.manual_seed(0)
    model = make()
    x = torch.stack([torch.randint(0, d, (batch,)) for d in dims], 1)
    activations = saved_activation_bytes(model, x, precision)
    optimizers = make_optimizers(model, TrainConfig())
    model(x).float().sum().backward()
    for optimizer in optimizers:
        optimizer.step()
    weights = sum(p.nbytes for p in model.parameters())
    assert estimate.parameters == weights
    assert estimate.gradients == sum(p.grad.nbytes for p in model.parameters())
    assert estimate.optimizer == sum(v.nbytes for o in optimizers for state in o.state.values()
                                     for v in state.values() if v.dim() > 0)
    if precision == "fp32":
        assert abs(estimate.activations - activations) <= 0.02 * activations
    else:
        assert 0.4 * estimate.activations < activations <= estimate.activations
    assert estimate.total > weights * 4 + activations + CUDA_CONTEXT_BYTES - 1


def test_packing_that_does_not_fit_is_refused():
    dims = [1000] * 10
    estimate = estimate_memory(lambda: build_model("dnn", dims, Shape(10, EmbeddingShape(1, 16), False),
                                                   ModelConfig(backbone="dnn")), dims, 2048)
    check_packing(estimate, 4, 4 * estimate.total)  # exactly fits
    with pytest.raises(ValueError, match=r"train.jobs_per_gpu=5 needs about .* lower train.jobs_per_gpu to 4"):
        check_packing(estimate, 5, 4 * estimate.total + 1, job="dnn-se-1x-s0")


def test_bf16_stays_close_to_fp32_and_tf32_changes_nothing_on_cpu(tmp_path):
    data = small_data(tmp_path)
    cfg = replace(TINY, max_epochs=3)
    fp32 = fit(model_for(data), data, cfg, seed=0)
    tf32 = fit(model_for(data), data, replace(cfg, precision="tf32"), seed=0)
    bf16_model = model_for(data)
    bf16 = fit(bf16_model, data, replace(cfg, precision="bf16"), seed=0)
    assert tf32.test_auc == fp32.test_auc  # TF32 applies to CUDA matmuls only
    # Tiny data, 3 epochs: test AUC moves by ~0.01 between seeds, and CPUs with native bf16
    # (AVX512-BF16, AMX) round differently from emulated bf16, so "close" is a few hundredths.
    assert abs(bf16.test_auc - fp32.test_auc) < 0.03, (bf16.test_auc, fp32.test_auc)
    assert bf16.test_auc != fp32.test_auc  # the towers really ran in bf16
    assert all(p.dtype == torch.float32 for p in bf16_model.parameters())  # weights stay fp32


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_trains_a_step_in_bf16(backbone):
    dims = [30, 50, 200, 1000, 7, 300]
    torch.manual_seed(0)
    model = build_model(backbone, dims, Shape(len(dims), EmbeddingShape(2, 8), True), ModelConfig(backbone=backbone))
    x = torch.stack([torch.randint(0, d, (64,)) for d in dims], 1)
    with autocast("bf16", torch.device("cpu")):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), torch.ones(64)).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in model.parameters())


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(tmp_path):
    data = small_data(tmp_path)
    cfg = replace(TINY, max_epochs=1)
    eager = fit(model_for(data), data, cfg, seed=0)
    compiled = fit(model_for(data), data, replace(cfg, compile=True), seed=0)
    # not bit-equal: compiled dropout draws its masks from another generator (and kernels fuse)
    assert abs(compiled.test_auc - eager.test_auc) < 0.01, (compiled.test_auc, eager.test_auc)


def test_execution_keys_leave_the_fingerprint_and_precision_enters_it():
    from recsys_scaling.config import config_fingerprint
    from recsys_scaling.sweep.grid import Composer

    base = config_fingerprint(Composer(None)([]))
    same = ["train.data_on_device=true", "train.compile=true", "train.jobs_per_gpu=4", "train.precision=fp32"]
    assert config_fingerprint(Composer(None)(same)) == base
    assert config_fingerprint(Composer(None)(["train.precision=bf16"])) != base


def test_a_wrong_precision_is_refused_at_composition():
    from hydra.errors import HydraException

    from recsys_scaling.sweep.grid import Composer

    with pytest.raises(HydraException, match="fp16"):
        Composer(None)(["train.precision=fp16"])


def test_ray_launcher_takes_a_fraction_of_a_gpu_per_job():
    from recsys_scaling.paths import find_sweep
    from recsys_scaling.sweep import grid

    jobs = grid.expand(find_sweep("smoke"), ["hydra/launcher=ray", "hydra.launcher.gpus_per_job=0.25"])
    assert jobs[0].launcher.gpus_per_job == 0.25
