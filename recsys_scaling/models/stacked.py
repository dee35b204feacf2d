"""K independently built copies of one tower module, applied to the K embedding sets at once.

Fused (the default), the copies' parameters and buffers are stacked along a leading set
dimension (`torch.func.stack_module_state`) and the tower's own forward is mapped over that
dimension with `vmap`: each layer runs as one batched kernel for all sets instead of K small
ones. A tower vmap cannot map (data-dependent control flow, `.item()`, ...) runs as a loop over
the copies instead; both forms compute the same numbers (tests/test_custom.py).
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def _slot(name: str) -> str:
    """A parameter or buffer path (`net.0.weight`) as a flat attribute name (no dots allowed)."""
    return name.replace(".", "-")


class StackedTowers(nn.Module):
    """(K, B, F, d) set-first embeddings -> (K, B, H): copy k applied to set k."""

    def __init__(self, copies: Sequence[nn.Module], fused: bool = True):
        super().__init__()
        if not copies:
            raise ValueError("StackedTowers needs at least one tower")
        self.num_sets, self.fused = len(copies), fused
        if not fused:
            self.copies = nn.ModuleList(copies)
            return
        params, buffers = stack_module_state(list(copies))
        shared = _shared_constants(copies)
        self._param_names: List[str] = list(params)
        self._buffer_names: List[str] = [n for n in buffers if n not in shared]
        self._shared_names: List[str] = list(shared)
        self.stacked = nn.ParameterDict({_slot(n): nn.Parameter(p) for n, p in params.items()})
        for name in self._buffer_names:
            self.register_buffer(f"stacked_buffer-{_slot(name)}", buffers[name])
        for name, value in shared.items():
            self.register_buffer(f"shared_buffer-{_slot(name)}", value.clone(), persistent=False)
        # The module structure functional_call runs with the stacked tensors: it holds no state of
        # its own (meta tensors), and is kept out of the submodules so it is never trained or saved.
        self.__dict__["_skeleton"] = copy.deepcopy(copies[0]).to("meta")

    def train(self, mode: bool = True) -> "StackedTowers":
        super().train(mode)
        if self.fused:
            self._skeleton.train(mode)
        return self

    def _state(self) -> tuple:
        params: Dict[str, torch.Tensor] = {n: self.stacked[_slot(n)] for n in self._param_names}
        buffers = {n: getattr(self, f"stacked_buffer-{_slot(n)}") for n in self._buffer_names}
        shared = {n: getattr(self, f"shared_buffer-{_slot(n)}") for n in self._shared_names}
        return params, buffers, shared

    def _one(self, params: dict, buffers: dict, shared: dict, emb: torch.Tensor) -> torch.Tensor:
        return functional_call(self._skeleton, (params, buffers, shared), (emb,))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return torch.stack([tower(emb[k]) for k, tower in enumerate(self.copies)])
        # randomness="different": each set draws its own dropout masks, as K separate towers would;
        # shared constants (index tables) enter unbatched, so indexing with them stays one gather
        return vmap(self._one, in_dims=(0, 0, None, 0), randomness="different")(*self._state(), emb)

    def tower(self, k: int) -> Dict[str, torch.Tensor]:
        """Set k's parameters and buffers by the tower's own names (views), in either form."""
        if not self.fused:
            return dict(self.copies[k].state_dict(keep_vars=True))
        params, buffers, shared = self._state()
        return {**{n: t[k] for n, t in {**params, **buffers}.items()}, **shared}


def _shared_constants(copies: Sequence[nn.Module]) -> Dict[str, torch.Tensor]:
    """Non-persistent buffers equal in every copy (index tables, masks): constants by torch's
    convention, so one copy serves all sets. Persistent buffers (batch-norm statistics) stay per set."""
    first = copies[0]
    transient = {f"{prefix}.{name}" if prefix else name
                 for prefix, module in first.named_modules() for name in module._non_persistent_buffers_set}
    found = {}
    for name, value in first.named_buffers():
        others = [dict(c.named_buffers())[name] for c in copies[1:]]
        if name in transient and all(_same(o, value) for o in others):
            found[name] = value
    return found


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal tensors; on the meta device (memory estimates: no values) equal shapes and types."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return True if a.is_meta or b.is_meta else torch.equal(a, b)
