"""Model zoo: analytic parameter counts equal instantiated ones; fused ME equals a per-set loop."""
from __future__ import annotations

import pytest
import torch

from recsys_scaling.budget import count_params
from recsys_scaling.config import EmbeddingShape, ModelConfig
from recsys_scaling.models import BACKBONES, Shape, build_model, uses_me_form

import loop_reference

CRITEO_LIKE = [105, 83, 71, 46, 50, 24, 27, 21, 37, 101, 84, 111, 70, 12133, 19414, 14590, 12646, 10873,
               11199, 18701, 5549, 16317, 13418, 57, 7884, 17148, 11087, 674, 15298, 14593, 16931, 3515,
               1788, 17263, 444, 10830, 1610, 5996, 9622]
SMALL = [7, 3, 12, 5, 9, 30]
PLAIN = sorted(set(BACKBONES) - {"hetero_moe"})
# custom: a user's tower from tests/towers.py (its own tests: tests/test_custom.py)
OPTIONS = {"custom": {"tower": "towers:NormedTower"}}


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_reference_counts_from_the_issue():
    assert count_params("dcnv2", CRITEO_LIKE, 10, 1) == {"embedding": 2_704_100, "dense": 928_761,
                                                          "total": 3_632_861}
    assert count_params("finalmlp", CRITEO_LIKE, 10, 4)["total"] == 13_524_402


@pytest.mark.parametrize("backbone", PLAIN)
@pytest.mark.parametrize("k,d,me", [(1, 10, False), (1, 10, True), (2, 10, True), (4, 6, True), (3, 50, True)])
def test_count_params_equals_instantiated(backbone, k, d, me):
    cfg = ModelConfig(backbone=backbone, **OPTIONS.get(backbone, {}))
    model = build_model(backbone, SMALL, Shape.of(len(SMALL), EmbeddingShape(k, d), "me" if me else "se"), cfg)
    counts = count_params(backbone, SMALL, d, k, multi_embedding=me, **OPTIONS.get(backbone, {}))
    assert counts["total"] == n_params(model)
    assert counts["embedding"] == model.embedding.table.weight.numel()


def test_me_with_one_set_is_the_se_base():
    """The paper's shared 1x column: ME with K = 1 is the SE base for every backbone (IPNN's ME
    form, inner products only, is taken from K = 2 on)."""
    assert not uses_me_form("me", 1) and uses_me_form("me", 2) and not uses_me_form("se", 4)
    for backbone in PLAIN:
        options = OPTIONS.get(backbone, {})
        assert (count_params(backbone, SMALL, 10, 1, multi_embedding=True, **options)
                == count_params(backbone, SMALL, 10, 1, multi_embedding=False, **options))
    ipnn_se = count_params("ipnn", SMALL, 10, 2, multi_embedding=False)
    ipnn_me = count_params("ipnn", SMALL, 10, 2, multi_embedding=True)
    assert ipnn_se["dense"] - ipnn_me["dense"] == 2 * len(SMALL) * 10 * 400


@pytest.mark.parametrize("aggregation", ["mean", "gate"])
@pytest.mark.parametrize("experts", [["dcnv2", "ipnn", "nfwfm", "dnn"], ["xdeepfm", "finalmlp"]])
def test_hetero_moe_count_equals_instantiated(aggregation, experts):
    cfg = ModelConfig(backbone="hetero_moe", experts=experts, aggregation=aggregation)
    model = build_model("hetero_moe", SMALL, Shape(len(SMALL), EmbeddingShape(len(experts), 8), True), cfg)
    counts = count_params("hetero_moe", SMALL, 8, len(experts), experts=experts, aggregation=aggregation)
    assert counts["total"] == n_params(model)


def test_count_params_is_fast_for_huge_vocabularies():
    counts = count_params("dcnv2", [50_000_000, 50_000_000, 3], 10, 10)
    assert counts["embedding"] == 100_000_003 * 100


def test_hetero_moe_gate_weights_are_reported():
    cfg = ModelConfig(backbone="hetero_moe", experts=["dnn", "ipnn"], aggregation="gate")
    model = build_model("hetero_moe", SMALL, Shape(len(SMALL), EmbeddingShape(2, 4), True), cfg)
    model(torch.randint(0, 3, (16, len(SMALL))))
    gates = model.diagnostics()
    assert set(gates) == {"gate_0_dnn", "gate_1_ipnn"}
    assert sum(gates.values()) == pytest.approx(1.0, abs=1e-5)


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="model.backbone='nope'"):
        count_params("nope", SMALL, 10, 1)


@pytest.mark.parametrize("backbone", PLAIN)
@pytest.mark.parametrize("k,me", [(1, False), (3, True)])
@pytest.mark.parametrize("training", [True, False])
def test_fused_equals_per_set_loop(backbone, k, me, training):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, dropout=0.0, hidden=16, cin_layers=[4, 3], **OPTIONS.get(backbone, {}))
    model = build_model(backbone, SMALL, Shape(len(SMALL), EmbeddingShape(k, 5), me), cfg).double()
    model.train(training)
    if not training:  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.stack([torch.randint(0, n, (64,)) for n in SMALL], 1)
    params = [p for p in model.parameters()]

    fused = model(x)
    fused_grads = torch.autograd.grad(fused.square().sum(), params, allow_unused=True)
    looped = loop_reference.forward(model, backbone, x)
    looped_grads = torch.autograd.grad(looped.square().sum(), params, allow_unused=True)

    torch.testing.assert_close(fused, looped, atol=1e-5, rtol=1e-5)
    for p, a, b in zip(params, fused_grads, looped_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_dropout_matches_the_inverted_dropout_distribution():
    from recsys_scaling.models.layers import dropout

    torch.manual_seed(0)
    x = torch.ones(400_000, requires_grad=True)
    y = dropout(x, 0.2, training=True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.003
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1.25))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient: the same mask and scale
    assert dropout(x, 0.2, training=False) is x
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))


# FlopCounterMode counts matrix products only; our closed form also counts the element-wise
# products that scale like a layer (cross terms, CIN, bilinear fusion), hence a tolerance.
FLOP_TOLERANCE = 0.03


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("k,d,arm", [(1, 10, "se"), (1, 10, "me"), (4, 10, "me"), (2, 16, "me"), (3, 50, "me")])
def test_count_flops_matches_torch_flop_counter(backbone, k, d, arm):
    from torch.utils.flop_counter import FlopCounterMode

    from recsys_scaling.budget import count_flops

    options = {"experts": ["dcnv2", "ipnn", "nfwfm", "dnn"][:k]} if backbone == "hetero_moe" else OPTIONS.get(backbone, {})
    cfg = ModelConfig(backbone=backbone, **options)
    model = build_model(backbone, SMALL, Shape.of(len(SMALL), EmbeddingShape(k, d), arm), cfg).eval()
    batch = 32
    x = torch.stack([torch.randint(0, v, (batch,)) for v in SMALL], 1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    measured = counter.get_total_flops() / batch
    ours = count_flops(backbone, len(SMALL), d, k, multi_embedding=arm == "me", **options)
    assert ours == pytest.approx(measured, rel=FLOP_TOLERANCE)
