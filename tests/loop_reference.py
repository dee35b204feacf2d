"""A plain per-set loop implementation of every backbone, computing each interaction the way
the reference code does (explicit pairs, materialised products), reading the fused model's
weights for set k. Used only to check the fused (batched over K) models."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def block(x, blk, k):
    """StackedBlock set k: Linear -> BatchNorm (this set's channels) -> ReLU (dropout 0 in tests)."""
    lin, norm = blk.linear, blk.norm.norm
    c = blk.out_features
    h = x @ lin.weight[k] + lin.bias[k]
    sl = slice(k * c, (k + 1) * c)
    h = F.batch_norm(h, norm.running_mean[sl].clone(), norm.running_var[sl].clone(),
                     norm.weight[sl], norm.bias[sl], norm.training, norm.momentum, norm.eps)
    return F.relu(h)


def batch_norm(x, stacked, k):
    norm, c = stacked.norm, stacked.channels
    sl = slice(k * c, (k + 1) * c)
    return F.batch_norm(x, norm.running_mean[sl].clone(), norm.running_var[sl].clone(),
                        norm.weight[sl], norm.bias[sl], norm.training, norm.momentum, norm.eps)


def pairwise_products(e):
    f = e.shape[1]
    return torch.stack([(e[:, i] * e[:, j]).sum(-1) for i in range(f) for j in range(i + 1, f)], dim=1)


def dnn(tower, e, k):
    return block(e.flatten(1), tower.block, k)


def dcnv2(tower, e, k):
    x0 = e.flatten(1)
    x = x0
    for w, b in zip(tower.weights, tower.biases):
        x = x0 * (x @ w[k] + b[k, 0]) + x
    return block(x, tower.block, k)


def ipnn(tower, e, k):
    products = pairwise_products(e)
    features = torch.cat([e.flatten(1), products], 1) if tower.with_flat else products
    return block(features, tower.block, k)


def nfwfm(tower, e, k):
    r = tower.field_weights[k]
    outer = e.unsqueeze(2) * e.unsqueeze(1)  # (B, F, F, d), as the reference materialises it
    h = (r[None, :, :, None] * outer).sum((1, 2))
    return block(batch_norm(h, tower.norm, k), tower.block, k)


def cin(module, x0, k):
    b, f, d = x0.shape
    h, pooled = x0, []
    for w, bias in zip(module.weights, module.biases):
        size = bias.shape[1]
        conv = w[k].reshape(size, f * h.shape[1])  # 1x1 conv over the F*H_{k-1} channels
        z = torch.einsum("bid,bjd->bijd", x0, h).reshape(b, f * h.shape[1], d)
        h = F.relu(F.conv1d(z, conv.unsqueeze(-1), bias[k, :, 0, 0]))
        pooled.append(h.sum(-1))
    return torch.cat(pooled, 1)


def xdeepfm(tower, e, k):
    return torch.cat([cin(tower.cin, e, k), block(e.flatten(1), tower.block, k)], 1)


def finalmlp(tower, e, k):
    flat = e.flatten(1)
    x = block(block(flat, tower.stream_x[0], k), tower.stream_x[1], k)
    y = block(block(flat, tower.stream_y[0], k), tower.stream_y[1], k)
    return torch.cat([x, y], 1)


def custom(tower, e, k):
    """A user's tower: set k's own weights in the tower's own forward, no vmap."""
    if not tower.fused:
        return tower.copies[k](e)
    return torch.func.functional_call(tower._skeleton, tower.tower(k), (e,))


TOWERS = {"dnn": dnn, "dcnv2": dcnv2, "ipnn": ipnn, "nfwfm": nfwfm, "xdeepfm": xdeepfm, "finalmlp": finalmlp,
          "custom": custom}


def forward(model, backbone, x):
    """Embeddings per set from set k's own table, tower per set in a loop, mean, shared head."""
    emb = model.embedding
    idx = x.long() + emb.offsets
    outs = [TOWERS[backbone](model.tower, F.embedding(idx, emb.set_table(k)), k) for k in range(emb.num_sets)]
    return model.head(torch.stack(outs).mean(0))
