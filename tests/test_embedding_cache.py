"""Stored image embeddings (``generalist.embedding_cache``), frozen batch norms, and the two frames of SC-SAM's step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from scsam_lite import config as C
from scsam_lite.data import SegData, TwoStreamBatches, load_dataset, make_label_split, weak_view
from scsam_lite.data.augment import weak_view_masks
from scsam_lite.data.batches import load_images, load_masks
from scsam_lite.errors import ConfigError
from scsam_lite.generalist import build_generalist
from scsam_lite.generalist.embedding_cache import compute_embeddings, segment
from scsam_lite.generalist.peft import freeze_for_peft
from scsam_lite.methods.sc_sam import SCSAM
from scsam_lite.prompts import sample_points
from scsam_lite.runtime import setup
from scsam_lite.trainer import train


def _data(n: int = 10, seed: int = 0) -> SegData:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    masks = np.zeros((n, 64, 64), np.uint8)
    masks[:, 20:40, 16:44] = 1
    return SegData.from_arrays(images, masks, {"train": np.arange(n - 2), "val": [n - 2], "test": [n - 1]})


def _frozen_tiny() -> nn.Module:
    torch.manual_seed(0)
    model = build_generalist("tiny")
    freeze_for_peft(model)
    return model


def test_embeddings_are_the_encoders_output_and_are_computed_once(tmp_path, monkeypatch):
    model, data = _frozen_tiny(), _data()
    emb = compute_embeddings(model, data, batch_size=4, cache_dir=tmp_path)
    assert len(emb) == len(data) and emb.meta["generalist"] == "tiny"
    with torch.no_grad():
        direct = model.eval().embed(load_images(data, np.array([7, 2])))
    torch.testing.assert_close(emb[[7, 2]], direct, atol=2e-3, rtol=2e-3)  # float16 storage
    # a second call loads the stored file instead of running the encoder
    monkeypatch.setattr(model, "embed", lambda images: pytest.fail("recomputed"))
    again = compute_embeddings(model, data, cache_dir=tmp_path)
    assert again.folder == emb.folder


def test_a_different_dataset_or_encoder_gets_its_own_embeddings(tmp_path):
    model = _frozen_tiny()
    a = compute_embeddings(model, _data(seed=0), cache_dir=tmp_path)
    b = compute_embeddings(model, _data(seed=1), cache_dir=tmp_path)
    with torch.no_grad():
        model.image_encoder.neck[0].weight.mul_(2)
    c = compute_embeddings(model, _data(seed=0), cache_dir=tmp_path)
    assert len({a.folder, b.folder, c.folder}) == 3


def test_an_interrupted_build_keeps_finished_shards_and_nothing_half_written(tmp_path, monkeypatch):
    import scsam_lite.generalist.embedding_cache as E

    monkeypatch.setattr(E, "SHARD_ITEMS", 4)
    model, data = _frozen_tiny(), _data()
    real, calls = model.embed, []

    def flaky(images):
        calls.append(len(images))
        if len(calls) == 3:  # the first shard (4 items, two batches of 2) is done, the second is not
            raise KeyboardInterrupt
        return real(images)

    monkeypatch.setattr(model, "embed", flaky)
    with pytest.raises(KeyboardInterrupt):
        compute_embeddings(model, data, batch_size=2, cache_dir=tmp_path)
    (folder,) = (tmp_path / "embeddings").iterdir()
    assert sorted(p.name.split(".", 1)[1] for p in folder.glob("shard-*")) == ["index.npy", "npy"]
    assert not list(folder.glob("*.tmp-*"))
    # resumed: only the 6 items still missing are embedded
    calls.clear()
    monkeypatch.setattr(model, "embed", lambda images: calls.append(len(images)) or real(images))
    emb = compute_embeddings(model, data, batch_size=2, cache_dir=tmp_path)
    assert sum(calls) == len(data) - 4 and emb.stored == len(data)
    with torch.no_grad():
        direct = model.eval().embed(load_images(data, np.array([0, 9])))
    torch.testing.assert_close(emb[[0, 9]], direct, atol=2e-3, rtol=2e-3)


def test_only_the_items_asked_for_are_embedded_and_the_rest_on_demand(tmp_path, monkeypatch):
    model, data = _frozen_tiny(), _data()
    real, calls = model.embed, []
    monkeypatch.setattr(model, "embed", lambda images: calls.append(len(images)) or real(images))
    emb = compute_embeddings(model, data, batch_size=8, cache_dir=tmp_path, index=[1, 3])
    assert emb.stored == 2 and sum(calls) == 2
    emb[[3, 5, 5]]  # item 5 is embedded when first asked for, once
    assert emb.stored == 3 and sum(calls) == 3
    # another process opening the same cache sees what is stored; without a model a missing item names the fix
    from scsam_lite.errors import DataError
    from scsam_lite.generalist.embedding_cache import ImageEmbeddings

    reader = ImageEmbeddings(emb.folder)
    torch.testing.assert_close(reader[[5, 1]], emb[[5, 1]])
    with pytest.raises(DataError, match="no stored embedding"):
        reader[[0]]


def test_a_version_1_cache_of_every_item_is_still_read(tmp_path):
    model, data = _frozen_tiny(), _data()
    emb = compute_embeddings(model, data, cache_dir=tmp_path)
    full = emb[np.arange(len(data))].numpy().astype(np.float16)
    for f in emb.folder.glob("shard-*"):
        f.unlink()
    np.save(emb.folder / "embeddings.npy", full)  # the single-file layout of earlier versions
    again = compute_embeddings(model, data, cache_dir=tmp_path)
    assert again.stored == len(data)
    torch.testing.assert_close(again[[4]], torch.from_numpy(full[[4]]).float())


def test_a_run_embeds_its_own_items_only(tmp_path):
    """With data.unlabeled_limit the run's unlabeled subset, its labeled images, validation and test are embedded;
    the other unlabeled images are not."""
    from scsam_lite.generalist.embedding_cache import run_items
    from scsam_lite.trainer import build_training

    cfg = C.build_config(
        "quick",
        {
            "train.method": "sc-sam",
            "data.labeled": 4,
            "data.unlabeled_limit": 10,
            "data.cache_dir": str(tmp_path),
            "generalist.peft": "none",
            "generalist.embedding_cache": True,
        },
    )
    rt = setup(0, "cpu", verbose=False)
    data, split, method, _ = build_training(cfg, rt)
    assert len(split.labeled) == 4 and len(split.unlabeled) == 10
    assert "10 of" in split.description and "unlabeled used" in split.description
    expected = run_items(data, split)
    assert method.embeddings.stored == len(expected) < len(data)
    assert method.embeddings.missing(expected).size == 0


def test_an_encoder_trainable_from_its_first_stage_cannot_be_cached(tmp_path):
    """Nothing before the first trainable stage is fixed, so nothing could be stored (adapters in the last blocks
    are fine: tests/test_encoder_stages.py)."""
    model = build_generalist("tiny")  # nothing frozen
    with pytest.raises(ConfigError, match="first stage") as err:
        compute_embeddings(model, _data(), cache_dir=tmp_path)
    assert "adapter_blocks=last2" in err.value.fix


def test_segment_from_stored_embeddings_matches_the_live_encoder(tmp_path):
    model, data = _frozen_tiny(), _data()
    emb = compute_embeddings(model, data, cache_dir=tmp_path)
    index = np.array([3, 0, 5])
    images, masks = load_images(data, index), load_masks(data, index)
    points = sample_points(masks, 3, 3, "random", seed=0)
    with torch.no_grad():
        live = model.eval()(images, points)
        stored = segment(model, emb, images, index, points)
    torch.testing.assert_close(stored, live, atol=5e-3, rtol=5e-3)
    with pytest.raises(ValueError, match="indices"):
        segment(model, emb, images, None, points)


class _BNEncoder(nn.Module):
    """A conv + batch-norm image encoder with the tiny SAM's embedding shape (32 x 16 x 16 at 64 px)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 4, stride=4)
        self.bn = nn.BatchNorm2d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_batch_norms_keep_their_pretrained_statistics_in_train_mode(frozen):
    model = build_generalist("tiny")
    model.image_encoder = _BNEncoder()
    if frozen:
        model.image_encoder.requires_grad_(False)
    before = model.image_encoder.bn.running_mean.clone()
    model.train()
    model(torch.rand(4, 3, 64, 64))
    changed = not torch.equal(before, model.image_encoder.bn.running_mean)
    assert model.image_encoder.bn.training is not frozen
    assert changed is not frozen
    assert model.mask_decoder.training  # everything else is in train mode


def test_weak_view_masks_warps_like_weak_view():
    masks = (torch.rand(5, 32, 32) > 0.5).long()
    images = masks[:, None].float().expand(-1, 3, -1, -1).contiguous()
    _, expected = weak_view(images, masks, seed=11)
    assert torch.equal(weak_view_masks(masks, seed=11), expected)
    assert not torch.equal(weak_view_masks(masks, seed=12), expected)


def _cached_cfg(tmp_path, **over) -> C.Config:
    base = {
        "train.iterations": 20,
        "train.val_every": 10,
        "generalist.peft": "none",
        "generalist.embedding_cache": True,
        "data.cache_dir": str(tmp_path / "cache"),
    }
    return C.build_config("quick", {**base, **over}, method="sc-sam")


def _sc_sam_with_a_batch(tmp_path):
    """An sc-sam method on stored embeddings and its augmented batch 4 (3 labeled + 3 unlabeled images)."""
    cfg = _cached_cfg(tmp_path)
    data = load_dataset("synthetic-polyp", cache_dir=cfg.data.cache_dir)
    split = make_label_split(data, 0.05, seed=0, require_unlabeled=True)
    method = SCSAM(cfg, data, setup(0, "cpu", verbose=False))
    batch = TwoStreamBatches(data, split, 3, 3, seed=0).batch(4)
    return data, method, batch, torch.cat([batch.labeled_image, batch.unlabeled_image])


@pytest.mark.slow
def test_sc_sam_with_stored_embeddings_keeps_the_two_frames_apart(tmp_path, monkeypatch):
    data, method, batch, images = _sc_sam_with_a_batch(tmp_path)
    with torch.no_grad():
        label = method.unet(images).argmax(1)
    frame = method.sam_frame(batch, images, label)
    # SAM's frame is the un-augmented images, with their ground truth ...
    index = np.concatenate([batch.labeled_index, batch.unlabeled_index])
    assert np.array_equal(frame.index, index)
    assert torch.equal(frame.images, load_images(data, index))
    assert torch.equal(frame.labeled_mask, load_masks(data, batch.labeled_index))
    assert not torch.equal(frame.images, images)  # (the batch itself is augmented)
    # ... which the batch's own augmentation seed warps onto the batch's masks
    assert torch.equal(weak_view_masks(frame.labeled_mask, seed=batch.labeled_aug_seed), batch.labeled_mask)
    # SAM's pseudo-labels of the unlabeled images go back into the batch's frame with the unlabeled stream's seed
    import scsam_lite.methods.sc_sam as sc_sam_module

    warped = []

    def spy(masks, *, seed):
        warped.append((tuple(masks.shape), seed))
        return weak_view_masks(masks, seed=seed)

    monkeypatch.setattr(sc_sam_module, "weak_view_masks", spy)
    out = method.train_step(batch, 4)
    assert warped == [((3, 64, 64), batch.unlabeled_aug_seed)]
    assert np.isfinite([out["loss_unet"], out["loss_sam"]]).all()


def test_the_look_at_un_augmented_images_is_no_training_pass(tmp_path):
    """The U-Net's extra, gradient-free prediction for SAM's frame runs in eval mode: the batch norms' running
    statistics move once per step (the augmented pass), and dropout does not make the prompts random."""
    data, method, batch, images = _sc_sam_with_a_batch(tmp_path)
    method.train(True)
    stats = {n: b.clone() for n, b in method.unet.named_buffers() if "running" in n}
    frames = [method.sam_frame(batch, images, images[:, 0].long()) for _ in range(2)]
    assert all(torch.equal(b, stats[n]) for n, b in method.unet.named_buffers() if "running" in n)
    assert torch.equal(frames[0].unet_label, frames[1].unet_label)  # no dropout: the same look twice
    assert method.unet.training  # and the U-Net is back in train mode for its own step


@pytest.mark.slow
@pytest.mark.parametrize("method", ["peft-sam", "sc-sam"])
def test_sam_methods_train_and_evaluate_from_stored_embeddings(method, tmp_path, monkeypatch):
    cfg = _cached_cfg(tmp_path, **{"train.method": method})
    calls = []
    cls = type(build_generalist("tiny"))
    real = cls.embed
    monkeypatch.setattr(cls, "embed", lambda self, x: calls.append(len(x)) or real(self, x))
    res = train(cfg, tmp_path / "run", verbose=False)
    assert 0.0 <= res.metrics["sam"]["dice"] <= 1.0
    # the encoder ran only to fill the store (each stored image once), never in training or evaluation
    assert sum(calls) == res.method.embeddings.stored > 0


def test_a_method_without_unlabeled_images_does_not_embed_them(tmp_path):
    """peft-sam learns from the labeled images only: the rest of the pool is not embedded (on the lab profile that
    would be 750 images, a quarter of an hour on a CPU)."""
    from scsam_lite.generalist.embedding_cache import run_items
    from scsam_lite.trainer import build_training

    cfg = C.build_config(
        "quick",
        {
            "train.method": "peft-sam",
            "data.labeled": 4,
            "data.cache_dir": str(tmp_path),
            "generalist.peft": "none",
            "generalist.embedding_cache": True,
        },
    )
    data, split, method, _ = build_training(cfg, setup(0, "cpu", verbose=False))
    expected = run_items(data, split, unlabeled=False)
    assert method.embeddings.stored == len(expected)
    assert method.embeddings.missing(split.unlabeled).size == len(split.unlabeled) > 0


@pytest.mark.parametrize("method", ["peft-sam", "sc-sam"])
def test_stored_embeddings_of_one_dataset_refuse_items_of_another(method, tmp_path):
    """Embeddings are looked up by index: a model holding one dataset's embeddings, asked to segment another
    dataset's items, must refuse (naming the fix) rather than segment other images' embeddings."""
    from scsam_lite.errors import DataError
    from scsam_lite.evaluation import evaluate_items
    from scsam_lite.methods import METHODS

    cfg = C.build_config(
        "quick",
        {
            "train.method": method,
            "data.cache_dir": str(tmp_path),
            "generalist.peft": "none",
            "generalist.embedding_cache": True,
        },
    )
    ours = _data(seed=0)
    model = METHODS.get(method)(cfg, ours, setup(0, "cpu", verbose=False))
    assert evaluate_items(model, ours, "test")["sam"][0]["item"] == "arrays0009"
    images, masks = _data(seed=1).images, _data(seed=1).masks
    splits = {"test": np.array([9])}
    for other in (
        SegData.from_arrays(images, masks, splits, name="other"),
        SegData.from_arrays(images, masks, splits),  # same name, size and ids: other images all the same
    ):
        with pytest.raises(DataError, match="stored SAM embeddings are of arrays") as err:
            evaluate_items(model, other, "test")
        assert "scsam-lite evaluate RUN --dataset NAME" in err.value.fix
    with pytest.raises(DataError, match="item index 12 is outside"):
        model.embeddings[[3, 12]]
