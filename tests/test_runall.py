"""``scsam-lite notebooks``: executes notebooks in order with the profile, writes a summary, names a failing cell."""

from __future__ import annotations

import json
import time

import nbformat
import pytest

from scsam_lite.cli import main
from scsam_lite.errors import ConfigError, NotebookError
from scsam_lite.runall import PeakMemory, notebooks_dir, read_summary, run_notebooks


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('import os\nPROFILE = os.environ.get("SCSAM_PROFILE", "x")\nSEED = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_runs_in_order_with_the_profile_and_writes_a_summary(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    _notebook(src / "02_second.ipynb", "open('order.txt', 'a').write('2')")
    _notebook(
        src / "01_first.ipynb",
        "open('order.txt', 'a').write('1')",
        "import os\nassert PROFILE == 'classroom' and os.environ['SCSAM_WIDGETS'] == 'static'\n"
        "open(os.environ['SCSAM_RUNS_DIR'] + '/seen.txt', 'w').write(PROFILE)",
    )
    out = tmp_path / "out"
    done = run_notebooks("classroom", out=out, notebooks=src, verbose=False)
    assert [d.name for d in done] == ["01_first.ipynb", "02_second.ipynb"]
    assert (src / "order.txt").read_text() == "12"  # in order, run inside the notebooks' folder
    assert (out / "runs" / "seen.txt").read_text() == "classroom"
    assert read_summary(out)["failed"] is None and (out / "02_second.ipynb").is_file()
    assert "01_first.ipynb" in (out / "summary.md").read_text()
    assert "| peak memory (GB) |" in (out / "summary.md").read_text()
    assert all(0 < d.peak_rss_gb < 2 for d in done)  # the kernel was seen, and it is a small one


def test_peak_memory_sees_a_child_process_at_its_largest():
    """A notebook's kernel is a child process: its peak is what is measured, not this process's."""
    import subprocess
    import sys

    import psutil

    # children of earlier tests still exiting would be counted too (a 1.85 GB peak was seen in the full fast tier)
    psutil.wait_procs(psutil.Process().children(recursive=True), timeout=30)
    # 480 MB, held until the test has let the sampler see it (a busy machine may starve the sampler for a while)
    hold = "import numpy, sys; a = numpy.ones(60_000_000); print('ready', flush=True); sys.stdin.read()"
    with PeakMemory(every_s=0.05) as memory:
        child = subprocess.Popen(
            [sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while memory.gb < 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
        child.communicate("")
    assert child.returncode == 0 and 0.4 < memory.gb < 1.5
    with PeakMemory(every_s=0.05) as idle:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)"], check=True)
    assert idle.gb < 0.1


@pytest.mark.slow
def test_a_failure_names_the_notebook_and_the_cell(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    _notebook(src / "01_ok.ipynb", "x = 1")
    _notebook(src / "02_bad.ipynb", "y = 2", "raise ValueError('the data root is wrong')")
    with pytest.raises(NotebookError) as exc:
        run_notebooks("quick", out=tmp_path / "out", notebooks=src, verbose=False)
    msg = str(exc.value)
    assert "02_bad.ipynb" in msg and "ValueError" in msg and "the data root is wrong" in msg
    assert "raise ValueError" in msg and "executed copy" in exc.value.fix
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failed"] == "02_bad.ipynb" and [n["name"] for n in summary["notebooks"]] == [
        "01_ok.ipynb"
    ]


@pytest.mark.slow
def test_only_and_missing_folders(tmp_path, capsys):
    src = tmp_path / "nbs"
    src.mkdir()
    _notebook(src / "01_a.ipynb", "pass")
    _notebook(src / "02_b.ipynb", "pass")
    done = run_notebooks(out=tmp_path / "o", notebooks=src, only=["02"], verbose=False)
    assert [d.name for d in done] == ["02_b.ipynb"]
    with pytest.raises(ConfigError, match="no course notebooks"):
        notebooks_dir(tmp_path / "empty")
    assert main(["notebooks", "--notebooks", str(src), "--only", "09", "--out", str(tmp_path / "o2")]) == 2
    assert "matches no notebook" in capsys.readouterr().err


def test_the_repository_notebooks_are_found():
    names = [p.name for p in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))]
    assert names[:3] == ["01_data.ipynb", "02_unet_ssl.ipynb", "03_peft_sam.ipynb"]


@pytest.mark.slow
def test_the_summary_says_what_each_run_was_and_when_the_profile_fell_back(tmp_path, capsys):
    """A run row written by a notebook that fell back to quick (lab without its data) is flagged in the summary and
    on the terminal; every row says its profile, seed, labels, HD95/ASD and whether it was trained or loaded."""
    src = tmp_path / "nbs"
    src.mkdir()
    row = {
        "run_dir": "RUNS/x",
        "method": "unet",
        "dataset": "synthetic-polyp",
        "preset": "quick",
        "seed": 0,
        "labeled": 0.05,
        "metrics": {"unet": {"dice": 0.5, "iou": 0.4, "hd95": 9.0, "asd": 3.0}},
    }
    _notebook(
        src / "01_fallback.ipynb",
        "import json, os\n"
        f"row = {row!r}\n"
        "row['run_dir'] = os.environ['SCSAM_RUNS_DIR'] + '/x'\n"
        "open(os.environ['SCSAM_RUNS_DIR'] + '/results.jsonl', 'w').write(json.dumps(row) + '\\n')",
    )
    out = tmp_path / "out"
    run_notebooks("lab", out=out, notebooks=src, verbose=True)
    summary = (out / "summary.md").read_text()
    assert "asked for the lab profile, but the runs used quick" in summary
    assert (
        "| x | unet | synthetic-polyp | quick | 0 | 5% | unet | 0.5000 | 0.4000 | 9.0 | 3.0 | trained here |"
        in summary
    )
    assert "asked for the lab profile" in capsys.readouterr().err
