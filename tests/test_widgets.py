"""The widget pattern, driven without a frontend: set a control, look at the figure."""

from __future__ import annotations

from types import SimpleNamespace

import ipywidgets as W
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scsam_lite import viz  # noqa: E402
from scsam_lite.data.base import SegData  # noqa: E402
from scsam_lite.errors import ConfigError  # noqa: E402
from scsam_lite.widgets import DatasetBrowser, Explorer, widget_mode  # noqa: E402
from scsam_lite.widgets import explorer as explorer_mod  # noqa: E402

FRONTEND_VARS = (
    "SCSAM_WIDGETS",
    "JPY_SESSION_NAME",
    "COLAB_RELEASE_TAG",
    "COLAB_GPU",
    "KAGGLE_KERNEL_RUN_TYPE",
)
FRONTEND_VARS += ("VSCODE_PID", "VSCODE_CWD")


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    for name in FRONTEND_VARS:
        monkeypatch.delenv(name, raising=False)


def tiny_data(n: int = 10, res: int = 24) -> SegData:
    """Each image a different grey level with a square whose position depends on the index."""
    images = np.zeros((n, res, res, 3), np.uint8)
    masks = np.zeros((n, res, res), np.uint8)
    for i in range(n):
        images[i] = 20 + 20 * i
        images[i, :, : res // 2, 0] = 200
        masks[i, 2 + i : 10 + i, 4:12] = 1
    splits = {"train": np.arange(0, 7), "val": np.arange(7, 9), "test": np.arange(9, 10)}
    return SegData.from_arrays(images, masks, splits, name="tiny", ids=[f"img{i:02d}" for i in range(n)])


VIEWS = {
    "flip": lambda img, m, seed: (img[:, ::-1].copy(), m[:, ::-1].copy()),
    "dark": lambda img, m, seed: ((img // 4).astype(np.uint8), m),
}


def title(fig) -> str:
    return fig.axes[0].get_title()


def pixels(fig) -> np.ndarray:
    return viz.figure_pixels(fig)


def test_every_control_changes_the_figure():
    b = DatasetBrowser(tiny_data(), views=VIEWS)
    first, first_px = title(b.figure), pixels(b.figure)
    assert "train 1/7" in first and "img00" in first and "original" in first

    b.controls["item"].value = 3
    assert "img03" in title(b.figure) and not np.array_equal(pixels(b.figure), first_px)

    before, before_title = pixels(b.figure), title(b.figure)
    b.controls["overlay"].value = False
    assert title(b.figure) == before_title and not np.array_equal(pixels(b.figure), before)

    before = pixels(b.figure)
    b.controls["view"].value = "flip"
    assert title(b.figure).endswith("flip") and not np.array_equal(pixels(b.figure), before)

    b.controls["split"].value = "test"
    assert "test 1/1" in title(b.figure) and "img09" in title(b.figure)
    assert b.renders >= 5


def test_split_change_clamps_the_item_slider():
    b = DatasetBrowser(tiny_data(), views=VIEWS)
    b.controls["item"].value = 6
    b.controls["split"].value = "val"
    assert b.controls["item"].max == 1 and b.controls["item"].value == 1
    assert "img08" in title(b.figure)


def test_label_split_adds_labeled_and_unlabeled():
    split = SimpleNamespace(labeled=np.array([2]), unlabeled=np.array([0, 1, 3, 4, 5, 6]))
    b = DatasetBrowser(tiny_data(), split, views=VIEWS)
    assert list(b.controls["split"].options) == ["train", "val", "test", "labeled", "unlabeled"]
    b.controls["split"].value = "labeled"
    assert "labeled 1/1" in title(b.figure) and "img02" in title(b.figure)


def test_views_are_deterministic_per_item():
    def noise(img, m, seed):
        return np.random.default_rng(seed).integers(0, 255, img.shape, dtype=np.uint8), m

    rng_views = {"noise": noise}
    b = DatasetBrowser(tiny_data(), views=rng_views, seed=3)
    _, a, _ = b.item("train", 2, "noise")
    _, again, _ = b.item("train", 2, "noise")
    _, other, _ = b.item("train", 4, "noise")
    assert np.array_equal(a, again) and not np.array_equal(a, other)


def test_renders_do_not_pile_up_figures():
    plt.close("all")
    b = DatasetBrowser(tiny_data(), views=VIEWS)
    for i in range(25):
        b.controls["item"].value = i % 7
    assert plt.get_fignums() == []
    assert b.figure is not None and pixels(b.figure).shape[-1] == 4


class Bars(Explorer):
    """The smallest explorer: one slider, one bar."""

    def __init__(self):
        super().__init__({"height": W.IntSlider(value=1, min=1, max=10, continuous_update=True)})

    def render(self, height):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.bar([0], [height])
        ax.set_ylim(0, 10)
        ax.set_title(f"height {height}")
        return fig


def test_explorer_pattern_and_continuous_update_off():
    e = Bars()
    assert e.controls["height"].continuous_update is False
    assert title(e.figure) == "height 1"
    low = pixels(e.figure)
    e.controls["height"].value = 9
    assert title(e.figure) == "height 9" and not np.array_equal(pixels(e.figure), low)
    assert e.values == {"height": 9}


def test_base_explorer_needs_render():
    with pytest.raises(NotImplementedError):
        Explorer({"x": W.IntSlider()})


def test_show_adds_a_static_picture_only_when_headless(monkeypatch):
    shown: list = []
    monkeypatch.setattr(explorer_mod, "display", lambda obj: shown.append(obj))
    b = DatasetBrowser(tiny_data(), views=VIEWS)

    b.show()  # nothing says a frontend is attached
    assert [type(x).__name__ for x in shown] == ["VBox", "Image"]
    assert shown[1].data[:8] == b"\x89PNG\r\n\x1a\n"

    shown.clear()
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/student/01_data.ipynb")
    b.show()
    assert [type(x).__name__ for x in shown] == ["VBox"]


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "static"),
        ({"JPY_SESSION_NAME": "nb.ipynb"}, "interactive"),
        ({"COLAB_RELEASE_TAG": "release-colab"}, "interactive"),
        ({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, "interactive"),
        ({"KAGGLE_KERNEL_RUN_TYPE": "Batch"}, "static"),
        ({"VSCODE_PID": "123"}, "interactive"),
        ({"JPY_SESSION_NAME": "nb.ipynb", "SCSAM_WIDGETS": "static"}, "static"),
        ({"SCSAM_WIDGETS": "Interactive"}, "interactive"),
    ],
)
def test_widget_mode_detection_and_override(monkeypatch, env, mode):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert widget_mode() == mode


def test_widget_mode_rejects_unknown_override(monkeypatch):
    monkeypatch.setenv("SCSAM_WIDGETS", "fancy")
    with pytest.raises(ConfigError) as err:
        widget_mode()
    assert "static" in err.value.fix


@pytest.mark.slow
def test_executed_notebook_keeps_a_png(tmp_path, monkeypatch):
    """End to end: a kernel with no frontend (as under nbval/papermill) leaves a PNG in the cell outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    code = (
        "import numpy as np\n"
        "from scsam_lite.data.base import SegData\n"
        "from scsam_lite.widgets import DatasetBrowser\n"
        "img = np.zeros((3, 16, 16, 1), np.uint8); m = np.zeros((3, 16, 16), np.uint8); m[:, 4:9, 4:9] = 1\n"
        "d = SegData('t', img, m, ['a', 'b', 'c'], ['a', 'b', 'c'], {'train': np.arange(3)},"
        " np.full((3, 2), np.nan), 16)\n"
        "DatasetBrowser(d, views={}).show()"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs), outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_real_views_keep_image_and_mask_aligned():
    from scsam_lite.widgets.dataset_browser import augmented_views

    mask = np.zeros((32, 32), np.uint8)
    mask[4:14, 6:20] = 1
    image = np.repeat(mask[..., None] * 255, 3, axis=2).astype(np.uint8)  # the image *is* the mask
    for seed in range(4):
        v = augmented_views(image, mask, seed=seed)
        (w_img, w_mask), s_mask = v["weak"], v["strong"][1]
        assert w_img.shape == image.shape and w_img.dtype == np.uint8 and w_mask.shape == mask.shape
        warped = w_img[..., 0] > 127
        iou = (warped & (w_mask > 0)).sum() / (warped | (w_mask > 0)).sum()
        assert iou > 0.85  # geometry applied identically to image and mask
        assert np.array_equal(s_mask, w_mask)  # strong = photometric changes on the same weak geometry
    assert not all(np.array_equal(augmented_views(image, mask, s)["weak"][1], mask) for s in range(4))


def test_browser_with_the_package_views():
    b = DatasetBrowser(tiny_data())
    assert list(b.controls["view"].options) == ["original", "weak", "strong"]
    b.controls["item"].value = 2
    original = pixels(b.figure)
    b.controls["view"].value = "strong"
    assert title(b.figure).endswith("strong") and not np.array_equal(pixels(b.figure), original)


def test_split_counts_break_train_into_labeled_and_unlabeled():
    data = tiny_data()
    assert viz.split_counts(data) == {"train": 7, "val": 2, "test": 1}
    split = SimpleNamespace(labeled=np.array([2]), unlabeled=np.array([0, 1, 3, 4, 5, 6]))
    assert viz.split_counts(data, split) == {"labeled": 1, "unlabeled": 6, "val": 2, "test": 1}
    fig = viz.split_bar(viz.split_counts(data, split), title="t")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["labeled", "unlabeled", "val", "test"]
    plt.close(fig)


def test_grid_handles_gray_images_partial_rows_and_prediction_outlines():
    data = tiny_data(5)
    gray = data.images[:, :, :, :1]
    fig = viz.sample_grid(gray, data.masks, ncols=3)
    assert len(fig.axes) == 6 and not fig.axes[5].axison  # 5 panels, the 6th blank
    plain = pixels(fig)
    plt.close(fig)
    fig = viz.sample_grid(gray, data.masks, preds=np.roll(data.masks, 3, axis=2), ncols=3)
    assert not np.array_equal(pixels(fig), plain)  # the magenta outlines are drawn
    plt.close(fig)
