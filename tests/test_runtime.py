import platform
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from scsam_lite import setup
from scsam_lite.errors import DeviceError
from scsam_lite.runtime import detect_platform, keep_freed_memory, pick_amp


def test_setup_cpu_prints_and_seeds(capsys):
    rt = setup(seed=5)
    out = capsys.readouterr().out
    assert "platform: local" in out and "device:" in out and "torch" in out
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    setup(seed=5, verbose=False)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    if not torch.cuda.is_available():
        assert rt.device.type == "cpu" and rt.amp_dtype is None and not rt.grad_scaler


def test_cudnn_flags_follow_determinism():
    setup(seed=0, deterministic=True, verbose=False)
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    setup(seed=0, deterministic=False, verbose=False)
    assert torch.backends.cudnn.deterministic is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_explicit_gpu_without_one_is_a_clear_error():
    with pytest.raises(DeviceError) as e:
        setup(device="cuda", verbose=False)
    assert "auto" in str(e.value)


def test_amp_choice():
    assert pick_amp(torch.device("cpu")) == (None, False)
    assert pick_amp(torch.device("cpu"), "fp32") == (None, False)
    with pytest.raises(ValueError):
        pick_amp(torch.device("cpu"), "fp8")


def test_platform_detection(monkeypatch):
    for var in ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("scsam_lite.paths.Path.is_dir", lambda self: False)
    assert detect_platform() == "local"
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert detect_platform() == "kaggle"
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")
    assert detect_platform() == "colab"


def test_progress_without_a_watcher_is_a_line_per_tenth(monkeypatch, capsys):
    from scsam_lite.progress import progress_bar

    monkeypatch.setenv("SCSAM_PROGRESS", "lines")
    bar = progress_bar(1000, "embedding", unit="img")
    for _ in range(250):
        bar.update(4)
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "embedding: 1000 img"
    assert [ln.split()[0] for ln in lines[1:]] == [f"{n}/1000" for n in range(100, 1001, 100)]
    monkeypatch.setenv("SCSAM_PROGRESS", "bar")
    from tqdm import tqdm

    bar = progress_bar(3, "x")
    assert isinstance(bar, tqdm)
    bar.close()


_FAULTS = """
import resource, sys, torch
from scsam_lite.runtime import keep_freed_memory
print(keep_freed_memory(sys.argv[1] == "keep"))
faults = []
for _ in range(8):  # 64 MB, touched and freed, eight times
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(16 * 2**20)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del block
print(min(faults[2:]))  # after the heap has grown to hold it
"""


def _faults_of_a_fresh_64mb_tensor(mode: str) -> tuple[str, int]:
    """In a fresh process (a long test session's heap would serve any block): the allocator setting it reports and
    the fewest minor page faults an allocation of 64 MB took once the first two had been freed."""
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
    setting, faults = out.stdout.split()
    return setting, int(faults)


@pytest.mark.slow
@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="a glibc setting"
)
def test_kept_freed_memory_is_reused_without_page_faults(monkeypatch):
    """The CPU speed-up of ``keep_freed_memory``: a large block freed and asked for again comes back without
    touching new pages; glibc's default unmaps it and faults every page in again."""
    setting, returned = _faults_of_a_fresh_64mb_tensor("return")
    assert setting == "return"
    setting, kept = _faults_of_a_fresh_64mb_tensor("keep")
    assert setting == "keep"
    assert returned >= 16 and kept <= returned // 4, (kept, returned)
    # setup() decides it for every run, and says what it decided; the environment turns it off
    try:
        monkeypatch.setenv("SCSAM_KEEP_FREED_MEMORY", "0")
        assert setup(seed=0, verbose=False).allocator == "return"
        monkeypatch.delenv("SCSAM_KEEP_FREED_MEMORY")
        assert setup(seed=0, verbose=False).allocator == "keep"
        assert setup(seed=0, verbose=False, keep_memory=False).as_dict()["allocator"] == "return"
    finally:
        keep_freed_memory(True)


def test_keep_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("", ""))
    assert keep_freed_memory(True) == "n/a"


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="a glibc setting"
)
def test_a_notebook_kernel_returns_freed_memory_and_its_training_loops_keep_it_for_their_length(monkeypatch):
    """A notebook holds whatever its cells did: kept freed blocks would make its memory the sum of every peak.
    There the default is glibc's own, and a training loop keeps blocks only while it runs."""
    from scsam_lite import runtime

    monkeypatch.delenv("SCSAM_KEEP_FREED_MEMORY", raising=False)
    try:
        monkeypatch.setattr(runtime, "_in_notebook", lambda: True)
        assert setup(seed=0, verbose=False).allocator == "return"
        with runtime.freed_memory_kept() as state:
            assert state == "keep" == runtime._ALLOCATOR
        assert runtime._ALLOCATOR == "return"  # given back after the loop
        monkeypatch.setenv("SCSAM_KEEP_FREED_MEMORY", "1")  # the environment decides either way
        assert setup(seed=0, verbose=False).allocator == "keep"
        monkeypatch.delenv("SCSAM_KEEP_FREED_MEMORY")
        monkeypatch.setattr(runtime, "_in_notebook", lambda: False)
        assert setup(seed=0, verbose=False).allocator == "keep"  # a script or the CLI: a process that trains
        with runtime.freed_memory_kept():
            pass
        assert runtime._ALLOCATOR == "keep"  # a loop leaves the process as it found it
    finally:
        keep_freed_memory(True)
