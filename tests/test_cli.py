"""The command line answers bad input with one message and exit code 2, never a traceback."""

import subprocess
import sys

import pytest

from scsam_lite.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "scsam_lite", *args], capture_output=True, text=True)


def test_help_documents_each_command():
    for cmd in ("train", "evaluate", "compare", "download", "datasets", "config"):
        out = run(cmd, "--help")
        assert out.returncode == 0 and "usage: scsam-lite" in out.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--dataset", "kvasir", "--out", "x"], "did you mean 'kvasir-seg'"),
        (["train", "--method", "unett", "--out", "x"], "did you mean 'unet'"),
        (["train", "--set", "train.lrr=1", "--out", "x"], "did you mean 'train.lr'"),
        (["train", "--resume"], "--out"),
        (["evaluate", "no-such-run"], "not a run directory"),
    ],
)
def test_bad_input_is_one_clear_error(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = subprocess.run([sys.executable, "-m", "scsam_lite", *args], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.startswith("error: ")


def test_config_lists_and_prints(capsys):
    assert main(["config", "--list"]) == 0
    assert "train.lr" in capsys.readouterr().out
    assert main(["config", "--preset", "paper"]) == 0
    assert '"iterations": 40000' in capsys.readouterr().out
