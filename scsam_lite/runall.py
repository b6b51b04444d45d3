"""``scsam-lite notebooks``: the whole course, notebooks 01-05 in order, executed headless with papermill.

Every notebook's ``parameters`` cell reads environment variables, so one profile reaches them all. They share one
runs folder (``OUT/runs``), so a later notebook that needs a model an earlier one trained with the same config
reuses it instead of retraining (the trainer says so). The executed notebooks land in ``OUT`` beside a summary
(time per notebook and the test metrics of every run); a failure names the notebook and shows the failing cell.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, NotebookError
from .runs import atomic_write_text, read_results, write_json

PATTERN = "[0-9][0-9]_*.ipynb"


@dataclass
class NotebookRun:
    name: str
    seconds: float
    output: str
    #: the notebook's kernel (with its child processes) at its largest, in GB: what a laptop must hold
    peak_rss_gb: float | None = None


class PeakMemory:
    """The largest resident memory of this process's children (the notebook kernel and whatever it starts),
    sampled a few times a second in a thread: papermill's kernel is another process, so this process's own
    ``ru_maxrss`` would not see it, and ``RUSAGE_CHILDREN`` keeps one maximum for all notebooks together."""

    def __init__(self, every_s: float = 0.2):
        import threading

        self.every_s, self.peak_bytes = every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for child in psutil.Process().children(recursive=True):
            try:
                total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # ended between the listing and the reading
        return total

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def gb(self) -> float:
        return round(self.peak_bytes / 2**30, 2)


def notebooks_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder holding the course's notebooks: ``path``, or ``notebooks/`` of the repository checkout."""
    folder = Path(path) if path else Path(__file__).resolve().parents[1] / "notebooks"
    if not folder.is_dir() or not any(folder.glob(PATTERN)):
        raise ConfigError(
            f"no course notebooks ({PATTERN}) in {folder}",
            "run from a clone of the repository (pip install -e .), or pass --notebooks DIR",
        )
    return folder


@contextmanager
def _environment(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failure(name: str, exc: Any) -> NotebookError:
    source = "\n".join("    " + line for line in str(getattr(exc, "source", "")).splitlines()[:12])
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", "?")
    return NotebookError(
        f"notebook {name} failed in cell [{cell}] with {getattr(exc, 'ename', type(exc).__name__)}: "
        f"{str(getattr(exc, 'evalue', exc))[:300]}\n  the cell:\n{source}",
        "open the executed copy (path below) to see the whole traceback; fix the cause and run again "
        "(finished trainings are reused)",
    )


def _select_notebooks(folder: Path, only: list[str] | None) -> list[Path]:
    """The course notebooks of ``folder`` in order, or just those that ``only`` names (by number prefix or stem):
    a typo in ``--only`` is an error rather than a run of nothing."""
    paths = sorted(folder.glob(PATTERN))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) or p.stem == o for o in only)]
        if not paths:
            raise ConfigError(f"--only {only} matches no notebook in {folder}", "use numbers like 01 03")
    return paths


def _notebook_env(profile: str, seed: int, runs: Path, data_root: str | None) -> dict[str, str]:
    """The environment variables every notebook's ``parameters`` cell reads, so that one profile, seed, runs
    folder and data root reach all of them."""
    env = {
        "SCSAM_PROFILE": profile,
        "SCSAM_SEED": str(seed),
        "SCSAM_RUNS_DIR": str(runs),
        "SCSAM_WIDGETS": "static",
        "SCSAM_PROGRESS": "lines",
    }
    if data_root:
        env["SCSAM_DATA_ROOT"] = str(Path(data_root).expanduser().resolve())
    return env


def run_notebooks(
    profile: str = "quick",
    *,
    out: str | os.PathLike = "runs/notebooks",
    data_root: str | None = None,
    seed: int = 0,
    notebooks: str | os.PathLike | None = None,
    only: list[str] | None = None,
    timeout_s: int | None = None,
    verbose: bool = True,
) -> list[NotebookRun]:
    """Execute the course notebooks in order with ``profile``; write them and ``summary.json``/``summary.md`` to ``out``."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    folder = notebooks_dir(notebooks)
    paths = _select_notebooks(folder, only)
    out = Path(out).expanduser().resolve()
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    env = _notebook_env(profile, seed, runs, data_root)
    done: list[NotebookRun] = []
    with _environment(env):
        for path in paths:
            target = out / path.name
            if verbose:
                print(f"running {path.name} ({profile}) ...", flush=True)
            t0 = time.perf_counter()
            try:
                with PeakMemory() as memory:
                    pm.execute_notebook(
                        str(path),
                        str(target),
                        parameters={"PROFILE": profile, "SEED": seed},
                        cwd=str(folder),
                        progress_bar=verbose,  # one bar of cells per notebook: minutes are never silent
                        execution_timeout=timeout_s,
                        kernel_name="python3",
                    )
            except PapermillExecutionError as exc:
                _write_summary(out, profile, done, failed=path.name)
                err = _failure(path.name, exc)
                err.fix += f"; executed copy: {target}"
                raise err from None
            seconds = time.perf_counter() - t0
            done.append(NotebookRun(path.name, round(seconds, 1), str(target), memory.gb))
            if verbose:
                print(f"  done in {seconds:.0f} s, peak memory {memory.gb:.1f} GB -> {target}", flush=True)
    _write_summary(out, profile, done)
    if verbose:
        print((out / "summary.md").read_text())
    mismatch = profile_mismatch(profile, _metrics_rows(runs))
    if mismatch:
        print(f"warning: {mismatch}", file=sys.stderr)
    return done


def _metrics_rows(runs: Path) -> list[dict[str, Any]]:
    rows = []
    for registry in sorted(runs.rglob("results.jsonl")):
        for r in read_results(registry):
            for model, m in r.get("metrics", {}).items():
                rows.append(
                    {
                        "run": Path(r["run_dir"]).name,
                        "method": r["method"],
                        "dataset": r["dataset"],
                        "preset": r.get("preset"),
                        "seed": r.get("seed"),
                        "labeled": r.get("labeled"),
                        "source": f"loaded: {r['reference']}" if r.get("reference") else "trained here",
                        "model": model,
                        **{k: round(m.get(k, float("nan")), 4) for k in ("dice", "iou", "hd95", "asd")},
                    }
                )
    return rows


def _write_summary(out: Path, profile: str, done: list[NotebookRun], failed: str | None = None) -> None:
    metrics = _metrics_rows(out / "runs")
    write_json(
        out / "summary.json",
        {"profile": profile, "notebooks": [asdict(d) for d in done], "failed": failed, "metrics": metrics},
    )
    lines = [f"# scsam-lite notebooks, profile {profile}", ""]
    mismatch = profile_mismatch(profile, metrics)
    if mismatch:
        lines += [f"**{mismatch}**", ""]
    lines += ["| notebook | time (s) | peak memory (GB) |", "| --- | --- | --- |"]
    lines += [f"| {d.name} | {d.seconds:.0f} | {_gb(d.peak_rss_gb)} |" for d in done]
    if failed:
        lines.append(f"| {failed} | FAILED | |")
    if metrics:
        lines += [
            "",
            "| run | method | dataset | profile | seed | labeled | model | test Dice | IoU | HD95 | ASD | source |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {m['run']} | {m['method']} | {m['dataset']} | {m['preset']} | {m['seed']} | "
            f"{_share(m['labeled'])} | {m['model']} | {m['dice']:.4f} | {m['iou']:.4f} | {m['hd95']:.1f} | "
            f"{m['asd']:.1f} | {m['source']} |"
            for m in metrics
        ]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")


def _gb(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _share(labeled: Any) -> str:
    if labeled is None:
        return ""
    return f"{labeled:.0%}" if labeled <= 1 else str(int(labeled))


def profile_mismatch(profile: str, metrics: list[dict[str, Any]]) -> str:
    """A warning when the runs were made with another profile than the one asked for (e.g. ``lab`` without its
    data falls back to ``quick`` inside the notebooks), else ''."""
    ran = sorted({str(m["preset"]) for m in metrics if m.get("preset")})
    if not ran or ran == [profile]:
        return ""
    return (
        f"asked for the {profile} profile, but the runs used {', '.join(ran)}: the notebooks fell back (for lab: "
        "no Kvasir-SEG found; set SCSAM_DATA_ROOT or pass --data-root, see the notebooks' first warning)"
    )


def read_summary(out: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(out) / "summary.json").read_text())
