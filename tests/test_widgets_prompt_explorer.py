"""The prompt explorer, zero-shot scoring and the prompt drawing helpers, driven headless.

Two generalists: the ``tiny`` random SAM (the real embed/decode path, RGB and grey) and an "oracle" whose mask is
exactly the box prompt plus discs around the positive points, so Dice values are known in advance and a prompt in
the wrong frame (x and y swapped, wrong item) shows up as a wrong number.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from scsam_lite import viz  # noqa: E402
from scsam_lite.data import load_dataset  # noqa: E402
from scsam_lite.data.base import SegData  # noqa: E402
from scsam_lite.errors import ConfigError  # noqa: E402
from scsam_lite.generalist import build_generalist  # noqa: E402
from scsam_lite.prompts import Points  # noqa: E402
from scsam_lite.widgets import PromptExplorer, prompt_gallery, zero_shot_scores, zero_shot_table  # noqa: E402
from scsam_lite.widgets.prompt_explorer import gt_prompts  # noqa: E402

RES = 32


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("SCSAM_WIDGETS", "static")


def rect_data(n: int = 5, res: int = RES, empty: tuple[int, ...] = (4,)) -> SegData:
    """Images with one off-centre, non-square rectangle each (x extent != y extent); items in ``empty`` have none."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 80, (n, res, res, 3), dtype=np.uint8)
    masks = np.zeros((n, res, res), np.uint8)
    for i in range(n):
        if i not in empty:
            masks[i, 3 + i : 10 + i, 14:28] = 1  # rows 3+i..9+i, columns 14..27
            images[i][masks[i] == 1] += 150
    splits = {"train": np.arange(0, 2), "val": np.arange(2, 3), "test": np.arange(2, n)}
    return SegData.from_arrays(images, masks, splits, name="rects", ids=[f"rect{i}" for i in range(n)])


class Oracle(nn.Module):
    """SAM stand-in: foreground = inside the box prompt, plus a disc of radius 3 around each positive point."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=1, keepdim=True)

    def decode(self, embeddings, points=None, boxes=None, *, size):
        h, w = size
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        fg = torch.zeros(embeddings.shape[0], h, w, dtype=torch.bool)
        for b in range(embeddings.shape[0]):
            if boxes is not None:
                x0, y0, x1, y1 = boxes[b].tolist()
                fg[b] |= (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
            if points is not None:
                for (x, y), lab in zip(points.coords[b].tolist(), points.labels[b].tolist(), strict=True):
                    if lab == 1:
                        fg[b] |= (xx - x) ** 2 + (yy - y) ** 2 <= 9
        return torch.where(fg, 10.0, -10.0)[:, None] + self.w

    def forward(self, images, points=None, boxes=None):
        return self.decode(self.embed(images), points, boxes, size=tuple(images.shape[-2:]))


def count_embeds(model: nn.Module, monkeypatch) -> list[tuple[bool, bool]]:
    """Wrap ``model.embed``; each call appends (training mode, grad enabled)."""
    calls: list[tuple[bool, bool]] = []
    inner = model.embed

    def embed(images):
        calls.append((model.training, torch.is_grad_enabled()))
        return inner(images)

    monkeypatch.setattr(model, "embed", embed)
    return calls


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_generalist("tiny", image_size=64)


def test_image_embedding_is_computed_once_per_image(tiny, monkeypatch):
    calls = count_embeds(tiny, monkeypatch)
    tiny.train(True)
    ex = PromptExplorer(tiny, rect_data(), [0, 1, 2])
    assert len(calls) == 1
    for name, value in [
        ("n_pos", 2),
        ("n_neg", 0),
        ("strategy", "interior"),
        ("kind", "points+box"),
        ("prompt_seed", 5),
    ]:
        ex.controls[name].value = value
    assert len(calls) == 1, "prompt controls must reuse the cached embedding"
    ex.controls["item"].value = 2
    ex.controls["n_pos"].value = 7
    ex.controls["item"].value = 0
    assert len(calls) == 2 and sorted(ex.embeddings) == [0, 2]
    assert ex.renders == 9
    assert calls == [(False, False)] * 2, "embed in eval mode without autograd"
    assert tiny.training, "the generalist's own mode is restored"
    assert not ex.embeddings[0].requires_grad


def test_controls_are_as_specified(tiny):
    ex = PromptExplorer(tiny, rect_data(), split="test", max_items=2)
    c = ex.controls
    assert list(ex.indices) == [2, 3] and c["item"].max == 1
    assert (c["n_pos"].min, c["n_pos"].max, c["n_neg"].min, c["n_neg"].max) == (0, 10, 0, 10)
    assert list(c["strategy"].options) == ["random", "interior"]
    assert list(c["kind"].options) == ["points", "box", "points+box"]
    assert not any(getattr(w, "continuous_update", False) for w in c.values())


def test_more_positive_points_change_the_figure_and_the_dice():
    data = rect_data()
    ex = PromptExplorer(Oracle(), data, [1], kind="points", n_pos=0, n_neg=3)
    assert ex.last_dice == 0.0, "negatives only: the oracle predicts nothing"
    before = viz.figure_pixels(ex.figure)
    assert "Dice 0.000" in ex.figure.axes[2].get_title()
    ex.controls["n_pos"].value = 5
    assert 0.2 < ex.last_dice < 1.0
    assert f"Dice {ex.last_dice:.3f}" in ex.figure.axes[2].get_title()
    assert "5 positive + 3 negative" in ex.figure._suptitle.get_text()
    assert not np.array_equal(before, viz.figure_pixels(ex.figure))


def test_box_prompt_lands_on_the_object():
    """The oracle returns the box itself: Dice 1 only if the box is in (x, y) order and the image's frame."""
    ex = PromptExplorer(Oracle(), rect_data(), [0, 1, 3], kind="box")
    for item in range(3):
        ex.controls["item"].value = item
        assert ex.last_dice == 1.0
    ex.controls["kind"].value = "points+box"
    assert ex.last_dice < 1.0  # discs around points near the edge spill over the rectangle
    patches = [p for p in ex.figure.axes[0].patches if type(p).__name__ == "Rectangle"]
    assert len(patches) == 1 and patches[0].get_width() == 14 and patches[0].get_height() == 7


def test_prompt_seed_resamples_the_points():
    ex = PromptExplorer(Oracle(), rect_data(), [1], n_pos=2, n_neg=0)
    first = ex.figure.axes[0].collections[-1].get_offsets().copy()
    ex.controls["prompt_seed"].value = 1
    second = ex.figure.axes[0].collections[-1].get_offsets()
    assert not np.array_equal(first, second)
    ex.controls["prompt_seed"].value = 0
    assert np.array_equal(first, ex.figure.axes[0].collections[-1].get_offsets())


def test_empty_ground_truth_is_shown_not_an_error(tiny):
    data = rect_data()
    ex = PromptExplorer(tiny, data, [4], kind="points+box", n_pos=5, n_neg=3)
    text = ex.figure._suptitle.get_text()
    assert "0 positive + 3 negative" in text and "whole image" in text and "no object" in text
    scatters = ex.figure.axes[0].collections
    assert len(scatters) == 1 and len(scatters[0].get_offsets()) == 3, "only the negatives are drawn"
    box = [p for p in ex.figure.axes[0].patches if type(p).__name__ == "Rectangle"][0]
    assert box.get_width() == RES and box.get_height() == RES
    assert "empty truth" in ex.figure.axes[2].get_title()
    oracle = PromptExplorer(Oracle(), data, [4], kind="points", n_pos=5, n_neg=0)
    assert oracle.last_dice == 1.0, "no prompt on an empty image: nothing predicted, nothing to find"
    assert "no prompt" in oracle.figure._suptitle.get_text()


def test_grey_dataset(tiny):
    data = load_dataset("synthetic-prostate")
    assert data.channels == 1
    ex = PromptExplorer(tiny, data, max_items=2, strategy="interior")
    assert ex.embeddings[int(ex.indices[0])].shape[0] == 1
    ex.controls["item"].value = 1
    assert ex.figure.axes[0].images[0].get_array().ndim == 2, "drawn as a grey image"
    assert 0.0 <= ex.last_dice <= 1.0


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"split": "tset"}, "test"),
        ({"indices": []}, "no items"),
        ({"indices": [99]}, "outside"),
        ({"max_items": 0}, "max_items"),
        ({"kind": "boxes"}, "box"),
        ({"strategy": "centre"}, "interior"),
        ({"n_pos": 11}, "n_pos"),
    ],
)
def test_bad_arguments_are_one_clear_error(kwargs, word):
    with pytest.raises(ConfigError) as err:
        PromptExplorer(Oracle(), rect_data(), **kwargs)
    assert word in str(err.value) and err.value.fix
    assert err.value.__cause__ is None


def test_zero_shot_scores():
    data = rect_data()
    box = zero_shot_scores(Oracle(), data, kind="box")
    assert box.shape == (3,) and box.tolist() == [1.0, 1.0, 0.0]  # the empty item: the box is the whole image
    pts = zero_shot_scores(Oracle(), data, [0, 1, 2, 3], kind="points", n_pos=3, n_neg=0, batch_size=3)
    same = zero_shot_scores(Oracle(), data, [2, 3, 0, 1], kind="points", n_pos=3, n_neg=0, batch_size=1)
    assert np.allclose(pts, same[[2, 3, 0, 1]]), "prompts are seeded per image, not per batch"
    assert (pts > 0).all() and (pts < 1).all()
    other = zero_shot_scores(Oracle(), data, [0, 1, 2, 3], kind="points", n_pos=3, n_neg=0, seed=7)
    assert not np.allclose(pts, other)


def test_zero_shot_table_embeds_each_batch_once(monkeypatch):
    oracle = Oracle()
    calls = count_embeds(oracle, monkeypatch)
    table = zero_shot_table(oracle, rect_data(), [0, 1, 2, 3], batch_size=3, n_pos=3, n_neg=0)
    assert list(table) == ["points", "box", "points+box"] and len(calls) == 2
    assert table["box"].tolist() == [1.0] * 4
    assert np.array_equal(
        table["points"], zero_shot_scores(oracle, rect_data(), [0, 1, 2, 3], kind="points", n_pos=3, n_neg=0)
    )
    with pytest.raises(ConfigError):
        zero_shot_table(oracle, rect_data(), kinds=("box", "boxes"))


def test_zero_shot_scores_on_tiny_keep_its_mode(tiny):
    tiny.train(True)
    scores = zero_shot_scores(tiny, rect_data(), kind="points+box", batch_size=2)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    assert tiny.training


def test_gt_prompts():
    masks = torch.from_numpy(rect_data().masks[:2]).bool()
    points, boxes = gt_prompts(masks, "points", 0, 0)
    assert points is None and boxes is None
    points, boxes = gt_prompts(masks, "points+box", 2, 1, seed=3)
    assert points.coords.shape == (2, 3, 2) and boxes.tolist()[0] == [14.0, 3.0, 27.0, 9.0]
    with pytest.raises(ConfigError):
        gt_prompts(masks, "point")


def test_draw_points_skips_padding_and_marks_kinds_apart():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.imshow(np.zeros((8, 8)))
    pts = Points(
        torch.tensor([[[1.0, 2.0], [0.0, 0.0], [5.0, 6.0], [7.0, 1.0]]]), torch.tensor([[1, -1, 0, 0]])
    )
    assert viz.draw_points(ax, pts) == (1, 2)
    pos, neg = ax.collections
    assert pos.get_offsets().tolist() == [[1.0, 2.0]] and len(neg.get_offsets()) == 2
    assert not np.allclose(pos.get_facecolor(), neg.get_facecolor())
    assert pos.get_paths()[0] is not neg.get_paths()[0]
    assert viz.draw_points(ax, np.zeros((2, 2)), np.array([-1, -1])) == (0, 0)
    viz.draw_box(ax, torch.tensor([2.0, 1.0, 4.0, 6.0]))
    rect = ax.patches[-1]
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == (1.5, 0.5, 3.0, 6.0)
    viz.close(fig)


def test_prompt_gallery_has_one_row_per_strategy():
    data = rect_data()
    fig = prompt_gallery(data, [0, 1, 4], n_pos=2, n_neg=2)
    assert len(fig.axes) == 6
    assert [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["random", "interior"]
    assert fig.axes[0].get_title() == "rect0"
    viz.close(fig)
    with pytest.raises(ConfigError):
        prompt_gallery(data, [])


def test_show_leaves_a_static_picture(monkeypatch):
    shown = []
    monkeypatch.setattr("scsam_lite.widgets.explorer.display", lambda obj: shown.append(obj))
    PromptExplorer(Oracle(), rect_data(), [0]).show()
    assert any(type(o).__name__ == "Image" for o in shown)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_uses_the_generalists_device(tiny):
    model = build_generalist("tiny", image_size=64).cuda()
    ex = PromptExplorer(model, rect_data(), [0])
    assert ex.embeddings[0].device.type == "cuda"
    assert zero_shot_scores(model, rect_data()).shape == (3,)
