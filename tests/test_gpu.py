"""The device side on a real GPU (run by benchmarks/gpu_check.sh; deselected without CUDA)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from recsys_scaling.config import EmbeddingShape, ModelConfig, TrainConfig
from recsys_scaling.device import CUDA_CONTEXT_BYTES, estimate_memory, gpu_slot, keep_data_on_device, visible_gpus
from recsys_scaling.models import Shape, build_model
from recsys_scaling.train import fit, make_optimizers

from test_train import model_for, small_data

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda:0")
TINY = TrainConfig(batch_size=256, max_epochs=2, patience=5, progress=False, device="cuda:0")


def test_small_data_is_kept_on_the_gpu():
    assert keep_data_on_device("auto", 10**8, CUDA)[0] is True
    free, _ = torch.cuda.mem_get_info(CUDA)
    assert keep_data_on_device("auto", free, CUDA)[0] is False


def test_device_resident_training_matches_the_host_loader_on_gpu(tmp_path):
    data = small_data(tmp_path)
    on_host = fit(model_for(data), data, replace(TINY, data_on_device="false"), seed=0)
    on_device = fit(model_for(data), data, replace(TINY, data_on_device="true"), seed=0)
    # the same batches; embedding backward on a GPU adds with atomics, so not bit-equal
    assert abs(on_device.test_auc - on_host.test_auc) < 5e-3


def test_bf16_and_tf32_on_gpu_stay_close_to_fp32(tmp_path):
    data = small_data(tmp_path)
    fp32 = fit(model_for(data), data, TINY, seed=0)
    for precision in ("tf32", "bf16"):
        other = fit(model_for(data), data, replace(TINY, precision=precision), seed=0)
        assert abs(other.test_auc - fp32.test_auc) < 0.01, (precision, other.test_auc, fp32.test_auc)


@pytest.mark.parametrize("backbone", ["dnn", "xdeepfm", "dcnv2", "finalmlp"])
def test_memory_estimate_bounds_the_measured_peak(backbone):
    dims, batch = [1000] * 20 + [100_000] * 6, 4096
    shape = Shape(len(dims), EmbeddingShape(4, 10), True)

    def make():
        return build_model(backbone, dims, shape, ModelConfig(backbone=backbone))

    estimate = estimate_memory(make, dims, batch)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(CUDA)
    base = torch.cuda.memory_allocated(CUDA)
    model = make().to(CUDA)
    optimizers = make_optimizers(model, TrainConfig())
    x = torch.stack([torch.randint(0, d, (batch,), device=CUDA) for d in dims], 1)
    for _ in range(2):  # the second step has Adam's state
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        model(x).sum().backward()
        for optimizer in optimizers:
            optimizer.step()
    measured = torch.cuda.max_memory_allocated(CUDA) - base
    predicted = estimate.total - CUDA_CONTEXT_BYTES
    assert 0.6 * predicted <= measured <= predicted, (measured, predicted)


def test_gpu_slots_cover_every_visible_gpu(tmp_path):
    with gpu_slot(visible_gpus(), 2, tmp_path) as first, gpu_slot(visible_gpus(), 2, tmp_path) as second:
        assert {first, second} == ({0, 1} if visible_gpus() > 1 else {0})
