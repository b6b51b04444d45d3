"""The preprocessing cache: reuse, staleness, resolution mismatch and atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from scsam_lite.data import cache
from scsam_lite.data.cache import Arrays, load_or_build
from scsam_lite.errors import DataError


def _arrays(n: int = 3, res: int = 8, value: int = 1) -> Arrays:
    ids = [f"x{i}" for i in range(n)]
    return Arrays(
        images=np.full((n, res, res, 3), value, np.uint8),
        masks=np.zeros((n, res, res), np.uint8),
        ids=ids,
        cases=list(ids),
        spacing=np.full((n, 2), np.nan),
    )


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = []
    for i in range(3):
        f = src / f"{i}.jpg"
        f.write_bytes(b"abc")
        files.append(f)
    return src, files


def test_hit_after_build(tmp_path, source):
    src, files = source
    calls = []

    def build():
        calls.append(1)
        return _arrays()

    a, meta = load_or_build("toy", 8, files, src, build, cache_dir=tmp_path / "c")
    assert meta["cache"] == "built" and len(calls) == 1
    b, meta = load_or_build("toy", 8, files, src, build, cache_dir=tmp_path / "c")
    assert meta["cache"] == "hit" and len(calls) == 1
    assert isinstance(b.images, np.memmap) and np.array_equal(a.images, b.images) and b.ids == a.ids
    assert (tmp_path / "c" / "toy" / "8px" / "meta.json").exists()


def test_stale_when_sources_or_params_change(tmp_path, source):
    src, files = source
    load_or_build("toy", 8, files, src, lambda: _arrays(value=1), cache_dir=tmp_path)
    os.utime(files[0], ns=(1, 1))  # a changed modification time
    a, meta = load_or_build("toy", 8, files, src, lambda: _arrays(value=2), cache_dir=tmp_path)
    assert meta["cache"] == "built" and a.images[0, 0, 0, 0] == 2
    b, meta = load_or_build(
        "toy", 8, files, src, lambda: _arrays(value=3), cache_dir=tmp_path, params={"p": 1}
    )
    assert meta["cache"] == "built" and b.images[0, 0, 0, 0] == 3
    c, meta = load_or_build(
        "toy", 8, files[:2], src, lambda: _arrays(value=4), cache_dir=tmp_path, params={"p": 1}
    )
    assert meta["cache"] == "built"
    leftovers = [p.name for p in (tmp_path / "toy").iterdir()]
    assert leftovers == ["8px"]


def test_moving_the_dataset_keeps_the_cache(tmp_path, source):
    src, files = source
    load_or_build("toy", 8, files, src, _arrays, cache_dir=tmp_path / "c")
    moved = tmp_path / "moved"
    os.replace(src, moved)
    files = [moved / f.name for f in files]
    _, meta = load_or_build("toy", 8, files, moved, _arrays, cache_dir=tmp_path / "c")
    assert meta["cache"] == "hit"


def test_cache_of_another_resolution_is_an_error(tmp_path, source):
    src, files = source
    load_or_build("toy", 8, files, src, _arrays, cache_dir=tmp_path)
    meta_path = tmp_path / "toy" / "8px" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["resolution"] = 16
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="16 px") as err:
        load_or_build("toy", 8, files, src, _arrays, cache_dir=tmp_path)
    assert "delete" in err.value.fix


def test_broken_cache_is_rebuilt(tmp_path, source):
    src, files = source
    load_or_build("toy", 8, files, src, _arrays, cache_dir=tmp_path)
    (tmp_path / "toy" / "8px" / "images.npy").write_bytes(b"garbage")
    _, meta = load_or_build("toy", 8, files, src, _arrays, cache_dir=tmp_path)
    assert meta["cache"] == "built"


def test_failed_build_leaves_no_half_cache(tmp_path, source, monkeypatch):
    src, files = source
    real_save = np.save

    def save_then_die(path, arr):
        if str(path).endswith("masks.npy"):
            raise KeyboardInterrupt  # a kernel interrupted mid-write
        real_save(path, arr)

    monkeypatch.setattr(cache.np, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        load_or_build("toy", 8, files, src, _arrays, cache_dir=tmp_path)
    assert list((tmp_path / "toy").iterdir()) == []  # neither 8px nor a temporary folder
    monkeypatch.setattr(cache.np, "save", real_save)
    load_or_build("toy", 8, files, src, lambda: _arrays(value=5), cache_dir=tmp_path)
    # a failed rebuild keeps the previous good cache
    os.utime(files[0], ns=(2, 2))
    monkeypatch.setattr(cache.np, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        load_or_build("toy", 8, files, src, lambda: _arrays(value=6), cache_dir=tmp_path)
    assert [p.name for p in (tmp_path / "toy").iterdir()] == ["8px"]
    meta = json.loads((tmp_path / "toy" / "8px" / "meta.json").read_text())
    assert np.load(tmp_path / "toy" / "8px" / "images.npy")[0, 0, 0, 0] == 5 and meta["resolution"] == 8


def test_leftover_of_a_killed_build_is_removed(tmp_path, source):
    src, files = source
    dead = tmp_path / "toy" / ".8px.tmp-999999999-abcd"
    dead.mkdir(parents=True)
    (dead / "images.npy").write_bytes(b"half")
    load_or_build("toy", 8, files, src, _arrays, cache_dir=tmp_path)
    if os.name == "posix":
        assert not dead.exists()
