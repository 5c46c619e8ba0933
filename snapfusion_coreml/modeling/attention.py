"""Multi-head attention in the Neural Engine's (B, C, 1, S) layout, three implementations.

Each implementation is a pure function of (q, k, v) that gives the same result to fp32
tolerance; the module picks one at construction (no global switch):

  ORIGINAL         one batched einsum over all heads. Best on the GPU.
  SPLIT_EINSUM     every head is a channel slice with its own einsum, results concatenated on
                   channels. The Neural Engine prefers many small ops on contiguous channel
                   slices to one 4-D batched matmul (apple/ml-ane-transformers, principle 2).
  SPLIT_EINSUM_V2  SPLIT_EINSUM with the query sequence also chunked (QUERY_CHUNK long) so the
                   64x64-latent self-attention map (4096 x 4096 per head) is never materialised
                   whole; the better Neural Engine choice for large images.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention_impl import AttentionImpl  # noqa: F401  (defined without torch, for the CLI)

QUERY_CHUNK = 512


def attention_original(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """q (B, C, 1, Sq); k, v (B, C, 1, Sk) -> (B, C, 1, Sq)."""
    b, c, _, _ = q.shape
    d = c // heads
    mh_q = q.view(b, heads, d, -1)  # (B, h, d, Sq)
    mh_k = k.view(b, heads, d, -1)  # (B, h, d, Sk)
    mh_v = v.view(b, heads, d, -1)
    weights = torch.einsum("bhdq,bhdk->bhqk", mh_q * d**-0.5, mh_k).softmax(dim=3)  # (B, h, Sq, Sk)
    out = torch.einsum("bhqk,bhdk->bhdq", weights, mh_v)  # (B, h, d, Sq)
    return out.reshape(b, c, 1, -1)


def _split_heads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int):
    """Per-head channel slices, one split op per tensor (q scaled once, before the split)."""
    d = int(q.shape[1]) // heads  # a plain int: a trace records a constant, not shape arithmetic
    mh_q = (q * d**-0.5).split(d, dim=1)  # (B, d, 1, Sq) per head
    mh_k = k.transpose(1, 3).split(d, dim=3)  # (B, Sk, 1, d) per head: channels last, contiguous slices
    mh_v = v.split(d, dim=1)  # (B, d, 1, Sk) per head
    return mh_q, mh_k, mh_v


def _head(qi: torch.Tensor, ki: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    weights = torch.einsum("bchq,bkhc->bkhq", qi, ki).softmax(dim=1)  # (B, Sk, 1, Sq)
    return torch.einsum("bkhq,bchk->bchq", weights, vi)  # (B, d, 1, Sq)


def attention_split_einsum(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """q (B, C, 1, Sq); k, v (B, C, 1, Sk) -> (B, C, 1, Sq), one einsum pair per head."""
    mh_q, mh_k, mh_v = _split_heads(q, k, v, heads)
    return torch.cat([_head(qi, ki, vi) for qi, ki, vi in zip(mh_q, mh_k, mh_v)], dim=1)


def attention_split_einsum_v2(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Like split_einsum, with the query sequence cut into QUERY_CHUNK-long pieces."""
    mh_q, mh_k, mh_v = _split_heads(q, k, v, heads)
    seq = q.shape[3]
    starts = range(0, seq, QUERY_CHUNK)
    per_head = [
        torch.cat([_head(qi[:, :, :, s : s + QUERY_CHUNK], ki, vi) for s in starts], dim=3)
        for qi, ki, vi in zip(mh_q, mh_k, mh_v)
    ]
    return torch.cat(per_head, dim=1)


ATTENTION_FUNCTIONS = {
    AttentionImpl.ORIGINAL: attention_original,
    AttentionImpl.SPLIT_EINSUM: attention_split_einsum,
    AttentionImpl.SPLIT_EINSUM_V2: attention_split_einsum_v2,
}


class Conv1x1(nn.Conv2d):
    """A diffusers nn.Linear rewritten as a 1x1 conv for (B, C, 1, S) tensors.

    The checkpoint stores its weight as (out, in); `linear_to_conv_hook` reshapes it to
    (out, in, 1, 1) at load and `to_checkpoint_state_dict` back at save.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, kernel_size=1, bias=bias)


class Attention(nn.Module):
    """diffusers' Attention (to_q, to_k, to_v, to_out.0) on (B, C, 1, S) tensors."""

    def __init__(self, query_dim: int, heads: int, context_dim: int | None = None,
                 impl: AttentionImpl = AttentionImpl.SPLIT_EINSUM, upcast: bool = False):
        super().__init__()
        context_dim = context_dim or query_dim
        self.heads = heads
        self.impl = AttentionImpl(impl)
        self.upcast = upcast
        self.to_q = Conv1x1(query_dim, query_dim, bias=False)
        self.to_k = Conv1x1(context_dim, query_dim, bias=False)
        self.to_v = Conv1x1(context_dim, query_dim, bias=False)
        self.to_out = nn.ModuleList([Conv1x1(query_dim, query_dim)])

    def forward(self, hidden_states: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states (B, C, 1, S); context (B, D, 1, S_ctx) or None for self-attention."""
        context = hidden_states if context is None else context
        q, k, v = self.to_q(hidden_states), self.to_k(context), self.to_v(context)
        if self.upcast and q.dtype != torch.float32:  # casts only where dtypes differ: no no-op ops in a trace
            q, k, v = q.float(), k.float(), v.float()
        out = ATTENTION_FUNCTIONS[self.impl](q, k, v, self.heads)
        return self.to_out[0](out if out.dtype == hidden_states.dtype else out.to(hidden_states.dtype))
