"""The image encoder as stages, and stored activations for an encoder adapted in its last blocks only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scsam_lite import config as C
from scsam_lite.data import SegData
from scsam_lite.data.batches import load_images, load_masks
from scsam_lite.generalist import build_generalist
from scsam_lite.generalist.adapters import add_adapters
from scsam_lite.generalist.embedding_cache import compute_embeddings, segment
from scsam_lite.generalist.encoder_stages import encoder_stages, frozen_prefix, run_stages
from scsam_lite.generalist.peft import freeze_for_peft
from scsam_lite.prompts import sample_points
from scsam_lite.trainer import train


def _data(n: int = 8, seed: int = 0) -> SegData:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    masks = np.zeros((n, 64, 64), np.uint8)
    masks[:, 20:40, 16:44] = 1
    return SegData.from_arrays(images, masks, {"train": np.arange(n - 2), "val": [n - 2], "test": [n - 1]})


def _adapted_tiny(seed: int = 0, blocks: str = "last1"):
    """The tiny SAM with adapters in its last block, their up-projections non-zero (so that they change the
    output: zero-initialised adapters would pass any test of where they sit)."""
    torch.manual_seed(0)
    model = build_generalist("tiny")
    torch.manual_seed(seed)
    add_adapters(model.image_encoder, blocks)
    freeze_for_peft(model)
    for name, p in model.image_encoder.named_parameters():
        if "adapter.up" in name:
            torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def test_the_stages_in_order_are_the_encoders_forward():
    model = build_generalist("tiny").eval()
    x = model.preprocess(torch.rand(2, 3, 64, 64))
    stages = encoder_stages(model.image_encoder)
    assert [s.name for s in stages] == ["patch_embed", "blocks.0", "blocks.1", "neck"]
    with torch.no_grad():
        torch.testing.assert_close(run_stages(stages, x), model.image_encoder(x))
        # cut anywhere, the two halves are the whole
        torch.testing.assert_close(run_stages(stages, run_stages(stages, x, 0, 2), 2), model.image_encoder(x))


def test_lite_medsams_tinyvit_cut_into_stages_is_its_forward():
    model = build_generalist("lite_medsam").eval()
    x = model.preprocess(torch.rand(1, 3, 256, 256))
    stages = encoder_stages(model.image_encoder)
    names = [s.name for s in stages]
    assert names[:2] == ["patch_embed", "layers.0"] and names[-1] == "neck"
    assert names.index("layers.3.blocks.0") == len(stages) - 3  # the last stage's two blocks, then the neck
    with torch.no_grad():
        torch.testing.assert_close(run_stages(stages, x), model.image_encoder(x), atol=1e-4, rtol=1e-4)


def test_the_cut_is_before_the_first_trainable_stage():
    assert frozen_prefix(_adapted_tiny(blocks="last1").image_encoder) == 2
    assert frozen_prefix(_adapted_tiny(blocks="all").image_encoder) == 1
    frozen = build_generalist("tiny")
    freeze_for_peft(frozen)
    assert frozen_prefix(frozen.image_encoder) == 4  # nothing trains: the finished embeddings


def test_activations_stored_before_the_adapters_give_the_adapted_models_masks(tmp_path):
    model, data = _adapted_tiny(), _data()
    emb = compute_embeddings(model, data, cache_dir=tmp_path)
    assert emb.cut == 2 and emb.meta["cut_stage"] == "blocks.1"
    index = np.array([5, 1])
    images, masks = load_images(data, index), load_masks(data, index)
    points = sample_points(masks, 3, 3, "random", seed=0)
    with torch.no_grad():
        live = model(images, points)
        stored = segment(model, emb, images, index, points)
    torch.testing.assert_close(stored, live, atol=5e-3, rtol=5e-3)  # float16 storage


def test_gradients_reach_the_adapters_through_stored_activations(tmp_path):
    model, data = _adapted_tiny(), _data()
    emb = compute_embeddings(model, data, cache_dir=tmp_path)
    index = np.array([0, 2])
    images, masks = load_images(data, index), load_masks(data, index)
    model.train()
    segment(
        model, emb, images, index, sample_points(masks, 2, 2, "random", seed=0)
    ).square().mean().backward()
    adapters = [p for n, p in model.image_encoder.named_parameters() if "adapter" in n]
    assert adapters and all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapters)
    assert all(p.grad is None for n, p in model.image_encoder.named_parameters() if "blocks.0" in n)


def test_stored_activations_are_shared_by_any_adapters_but_not_by_another_frozen_part(tmp_path):
    """The key covers the stages before the cut only: runs with other adapter weights (another seed, a later
    step) read the same store; a changed frozen weight before the cut gets its own."""
    data = _data()
    a = compute_embeddings(_adapted_tiny(seed=0), data, cache_dir=tmp_path)
    b = compute_embeddings(_adapted_tiny(seed=1), data, cache_dir=tmp_path)
    changed = _adapted_tiny(seed=0)
    with torch.no_grad():
        changed.image_encoder.blocks[0].mlp.lin1.weight.mul_(2)
    c = compute_embeddings(changed, data, cache_dir=tmp_path)
    frozen = build_generalist("tiny")
    freeze_for_peft(frozen)
    d = compute_embeddings(frozen, data, cache_dir=tmp_path)  # the finished embeddings: a store of their own
    assert a.folder == b.folder and len({a.folder, c.folder, d.folder}) == 3


@pytest.mark.slow
def test_sc_sam_trains_adapters_in_the_last_block_over_stored_activations(tmp_path):
    over = {
        "train.iterations": 6,
        "train.val_every": 3,
        "generalist.peft": "adapter",
        "generalist.adapter_blocks": "last1",
        "generalist.embedding_cache": True,
        "data.cache_dir": str(tmp_path / "cache"),
    }
    cfg = C.build_config("quick", over, method="sc-sam")
    assert cfg.generalist.adapter_zero_init  # the adapters' up-projections start at zero ...
    res = train(cfg, tmp_path / "run", verbose=False)
    assert res.method.embeddings.cut == 2
    ups = [p for n, p in res.method.sam.image_encoder.named_parameters() if "adapter.up.weight" in n]
    assert ups and all(p.abs().sum() > 0 for p in ups)  # ... and trained from the stored activations
    assert 0.0 <= res.metrics["sam"]["dice"] <= 1.0


def test_what_trains_says_what_is_stored():
    from scsam_lite.generalist.peft import what_trains

    adapted = C.build_config(
        "lab", {"generalist.peft": "adapter", "generalist.adapter_blocks": "last2"}, method="sc-sam"
    )
    text = what_trains(adapted.generalist)
    assert "'last2'" in text and "before the first adapted block is stored" in text
    assert "decoder fine-tuning" in what_trains(C.build_config("lab", {}, method="sc-sam").generalist)


def test_the_cache_with_adapters_in_every_block_is_refused_with_the_fix():
    """Stored activations before the first of all blocks would save almost nothing and cost gigabytes: the lab
    profile's `peft` grid (adapters in every block) is refused, naming the last-blocks setting."""
    from scsam_lite.errors import ConfigError

    with pytest.raises(ConfigError, match="adapter_blocks=all") as err:
        C.build_config("lab", {"generalist.peft": "lora"}, method="peft-sam")
    assert "adapter_blocks=last2" in err.value.fix and "peft=none" in err.value.fix
    C.build_config(
        "lab", {"generalist.peft": "lora", "generalist.adapter_blocks": "last2"}, method="peft-sam"
    )
