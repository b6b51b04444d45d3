"""safe_extract: all-or-nothing extraction that refuses members escaping the target."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from scsam_lite.download import safe_extract
from scsam_lite.errors import DownloadError


def make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary folders safe_extract may have left beside the target."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


GOOD = {"Data/images/a.jpg": b"img-a", "Data/masks/a.jpg": b"mask-a", "Data/README.txt": b"hello"}


def test_zip_is_extracted_into_the_target(tmp_path):
    archive = make_zip(tmp_path / "good.zip", GOOD)
    out = safe_extract(archive, tmp_path / "root" / "ds")
    assert out == tmp_path / "root" / "ds"
    assert (out / "Data/images/a.jpg").read_bytes() == b"img-a"
    assert (out / "Data/README.txt").read_bytes() == b"hello"
    assert leftovers(out.parent) == []


def test_tar_gz_is_extracted_and_inner_links_are_kept(tmp_path):
    archive = make_tar(tmp_path / "good.tar.gz", [*GOOD.items(), link("Data/latest.jpg", "images/a.jpg")])
    out = safe_extract(archive, tmp_path / "ds")
    assert (out / "Data/masks/a.jpg").read_bytes() == b"mask-a"
    assert (out / "Data/latest.jpg").read_bytes() == b"img-a"


@pytest.mark.parametrize(
    "bad_name", ["../evil.txt", "Data/../../evil.txt", "/tmp/abs-evil.txt", "..\\evil.txt", "C:/evil.txt"]
)
def test_zip_member_escaping_the_target_is_refused(tmp_path, bad_name):
    archive = make_zip(tmp_path / "bad.zip", {**GOOD, bad_name: b"pwned"})
    parent = tmp_path / "root"
    parent.mkdir()
    with pytest.raises(DownloadError, match="refusing to extract") as info:
        safe_extract(archive, parent / "ds")
    assert repr(bad_name) in str(info.value)
    assert not (parent / "ds").exists()
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/abs-evil.txt").exists()
    assert leftovers(parent) == []


def test_zip_symlink_member_is_refused(tmp_path):
    archive = make_zip(tmp_path / "link.zip", GOOD, symlinks={"Data/escape": "../../.."})
    with pytest.raises(DownloadError, match="symbolic link"):
        safe_extract(archive, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    "members, why",
    [
        ([("/tmp/abs-evil-tar.txt", b"x")], "absolute path"),
        ([("../evil.txt", b"x")], "outside the target"),
        ([link("Data/out", "../../outside")], "link pointing outside"),
        ([link("Data/out", "/etc")], "link pointing outside"),
        ([link("Data/pw", "/etc/passwd", tarfile.LNKTYPE)], "link pointing outside"),
        ([link("Data/dir", "."), ("Data/dir/x.txt", b"x")], "through a link"),
        # a chain that looks harmless as text: A is the folder itself, so A/.. is its parent
        ([link("A", "."), link("B", "A/..")], "link pointing outside"),
        ([link("Data/A", ".."), link("Data/B", "A/..")], "link pointing outside"),
        ([link("Data/L1", "L2"), link("Data/L2", "L1"), link("Data/L3", "L1/x")], "link pointing outside"),
    ],
)
def test_tar_member_escaping_the_target_is_refused(tmp_path, members, why):
    archive = make_tar(tmp_path / "bad.tar.gz", [*GOOD.items(), *members])
    parent = tmp_path / "root"
    parent.mkdir()
    with pytest.raises(DownloadError, match=why):
        safe_extract(archive, parent / "ds")
    assert not (parent / "ds").exists()
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/abs-evil-tar.txt").exists()
    assert leftovers(parent) == []


def test_truncated_zip_is_a_clear_error_without_leftovers(tmp_path):
    good = make_zip(tmp_path / "good.zip", {f"Data/{i}.bin": bytes([i]) * 5000 for i in range(20)})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DownloadError, match="truncated|neither a zip nor a tar") as info:
        safe_extract(cut, tmp_path / "root" / "ds")
    assert "download it again" in info.value.fix
    assert not (tmp_path / "root" / "ds").exists()
    assert leftovers(tmp_path / "root") == []


def test_truncated_tar_is_a_clear_error(tmp_path):
    good = make_tar(tmp_path / "good.tar.gz", [(f"Data/{i}.bin", bytes(range(256)) * 40) for i in range(20)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DownloadError, match="damaged|neither"):
        safe_extract(cut, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_an_html_error_page_is_not_an_archive(tmp_path):
    page = tmp_path / "kvasir-seg.zip"
    page.write_text("<html><body>Please log in</body></html>")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        safe_extract(page, tmp_path / "ds")


def test_existing_target_needs_overwrite_and_is_replaced_whole(tmp_path):
    archive = make_zip(tmp_path / "good.zip", GOOD)
    target = tmp_path / "ds"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(DownloadError, match="already exists"):
        safe_extract(archive, target)
    assert (target / "old.txt").exists()
    safe_extract(archive, target, overwrite=True)
    assert not (target / "old.txt").exists()
    assert (target / "Data/images/a.jpg").is_file()
    assert leftovers(tmp_path) == []


def test_a_failing_check_leaves_nothing_and_sees_the_full_tree(tmp_path):
    archive = make_zip(tmp_path / "good.zip", GOOD)
    seen = []

    def check(tree: Path) -> None:
        seen.append(sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()))
        raise DownloadError("wrong files")

    with pytest.raises(DownloadError, match="wrong files"):
        safe_extract(archive, tmp_path / "ds", check=check)
    assert seen == [sorted(GOOD)]
    assert not (tmp_path / "ds").exists()
    assert leftovers(tmp_path) == []
