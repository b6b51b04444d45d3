"""Run directories and the results registry.

Every run leaves the same files, so any figure can be traced to the command that made it::

    RUN_DIR/config.json        the fully resolved config (and the command line, runtime, label split)
    RUN_DIR/history.jsonl      one JSON line per validation (step, losses, val dice, lr, time)
    RUN_DIR/metrics.json       {"<model>": {"dice": .., "iou": .., "hd95": .., "asd": ..}} on the test split
    RUN_DIR/metrics_items.csv  the same metrics per test image (per volume for 3D data): model,item,dice,...
                               (model,item,group,dice,... where the images come in groups, e.g. videos)
    RUN_DIR/checkpoints/last.pt, best.pt

and appends one row to the results registry ``results.jsonl`` beside it. Every write is atomic (temp file in the
same folder, then ``os.replace``): a run killed at any moment never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from .errors import CheckpointError, DataError, TrainingError
from .slurm_state import slurm_state


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        # "x": a new file with the permissions open() gives (umask), not mkstemp's private 0600; on any system
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_probe(path: str | os.PathLike, arrays: dict[str, Any]) -> Path:
    """Write one probe snapshot (a dict of arrays) as ``.npz``, atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_probes(run_dir: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """All probe snapshots of a run, in step order (``[]`` when the method saves none)."""
    files = sorted((Path(run_dir) / "probes").glob("step_*.npz"))
    out = []
    for f in files:
        with np.load(f) as z:
            out.append({k: z[k] for k in z.files})
    return out


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_item_metrics(path: str | os.PathLike, items: dict[str, list[dict[str, Any]]]) -> Path:
    """Per-item metric rows per model (:func:`scsam_lite.evaluation.evaluate_items`) as one CSV, atomically."""
    rows = [{"model": model, **row} for model, model_rows in items.items() for row in model_rows]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def read_item_metrics(path: str | os.PathLike) -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {item: {metric: value}}}`` from a file :func:`write_item_metrics` wrote (its ``group`` column,
    if any, is read by :func:`read_item_groups`); a DataError naming the file and line if it is not one."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        try:
            for row in reader:
                model, item = row.pop("model"), row.pop("item")
                row.pop("group", None)
                if None in row or None in row.values():
                    raise ValueError("a row with more or fewer fields than the header")
                out.setdefault(model, {})[item] = {k: float(v) for k, v in row.items()}
        except (KeyError, ValueError, TypeError, csv.Error) as exc:
            raise DataError(
                f"{path} is not a per-item metrics file (line {reader.line_num}: {exc})",
                "write it again with `scsam-lite evaluate RUN --split test`",
            ) from None
    return out


def read_item_groups(path: str | os.PathLike) -> dict[str, str] | None:
    """``{item: group}`` from a per-item metrics file, or None when it has no ``group`` column."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if "group" not in (reader.fieldnames or []):
            return None
        return {row["item"]: row["group"] for row in reader}


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` through a buffer and an atomic replace."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True`` (no arbitrary code from a checkpoint), with one clear error if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}", "train first, or point at the run directory that has it"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated (even empty) or not a torch file
        first = (str(exc).splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(exc).__name__}{': ' + first if first else ''}"
            f"{', an empty file' if path.stat().st_size == 0 else ''})",
            "delete it and train again: a last.pt is needed to resume, a best.pt to evaluate",
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a scsam-lite checkpoint (a {type(state).__name__})")
    return state


class RunDir:
    """One run's folder. Create it with :meth:`open`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()

    config_path = property(lambda self: self.path / "config.json")
    history_path = property(lambda self: self.path / "history.jsonl")
    metrics_path = property(lambda self: self.path / "metrics.json")
    items_path = property(lambda self: self.path / "metrics_items.csv")
    #: volumetric datasets: the same test predictions scored slice by slice in 2D, as the reference scores them
    slices_metrics_path = property(lambda self: self.path / "metrics_slices.json")
    slices_items_path = property(lambda self: self.path / "metrics_slices_items.csv")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    last_path = property(lambda self: self.checkpoint_dir / "last.pt")
    best_path = property(lambda self: self.checkpoint_dir / "best.pt")

    def best_model_path(self, model: str) -> Path:
        """The checkpoint of one model chosen on its own validation Dice (``cotrain.checkpoints=separate``)."""
        return self.checkpoint_dir / f"best_{model}.pt"

    @classmethod
    def open(cls, path: str | os.PathLike, *, resume: bool) -> RunDir:
        """A run directory ready to write. Without ``resume``, a directory that already holds a run is an error."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise TrainingError(f"--out {run.path} is a file, not a folder", "choose another --out")
        if not resume and (run.last_path.exists() or run.metrics_path.exists()):
            raise TrainingError(
                f"{run.path} already holds a run",
                "pass --resume to continue it, or choose another --out",
            )
        run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return run

    def exists(self) -> bool:
        return self.config_path.is_file()

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.is_file():
            raise TrainingError(
                f"{self.path} is not a run directory (no config.json)", "give the --out of a finished run"
            )
        try:
            saved = read_json(self.config_path)
            saved["config"]  # noqa: B018 (the part every reader needs)
        except (ValueError, KeyError, TypeError) as exc:
            raise TrainingError(
                f"{self.config_path} is damaged ({type(exc).__name__}: {exc})",
                "the run's settings cannot be recovered from it: start the run again in a new --out",
            ) from None
        return saved

    def log(self, record: dict[str, Any]) -> None:
        """Append one line to ``history.jsonl`` (flushed, so a disconnect keeps it)."""
        with open(self.history_path, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")
            f.flush()

    def history(self) -> list[dict[str, Any]]:
        """The validation records; a last line cut off by a kill mid-write is left out (the run resumes from its
        checkpoint and writes it again), a damaged line elsewhere is an error naming the file."""
        if not self.history_path.is_file():
            return []
        lines = [line for line in self.history_path.read_text().splitlines() if line.strip()]
        out = []
        for n, line in enumerate(lines, 1):
            try:
                out.append(json.loads(line))
            except ValueError:
                if n == len(lines):
                    break
                raise DataError(
                    f"{self.history_path} line {n} is damaged", "restore the file, or start the run again"
                ) from None
        return out

    def truncate_history(self, step: int) -> None:
        """Keep the records up to ``step``: a resumed run rewrites what came after its checkpoint (and a cut-off
        last line)."""
        kept = [r for r in self.history() if r.get("step", 0) <= step]
        text = "".join(json.dumps(r, default=float) + "\n" for r in kept)
        if self.history_path.is_file() and self.history_path.read_text() == text:
            return  # nothing to rewrite: a finished run in a read-only folder resumes too
        atomic_write_text(self.history_path, text)

    @contextlib.contextmanager
    def lock(self):
        """Only one process trains into a run folder at a time: ``.lock`` holds the owner's host and pid; a lock
        whose process is gone (killed, rebooted) is taken over."""
        path = self.path / ".lock"
        try:
            self._acquire(path)
        except OSError as err:
            if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and self.metrics_path.is_file():
                yield self  # a finished run in a read-only folder: read, never written
                return
            raise
        # writes cut short by a kill: we own the folder now, so no one else is writing them
        for orphan in [*self.path.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")]:
            orphan.unlink(missing_ok=True)
        try:
            yield self
        finally:
            path.unlink(missing_ok=True)

    def _acquire(self, path: Path) -> None:
        """Create the lock, or take over a stale one. Deciding that a lock is stale and replacing it happens under
        a guard file, one process at a time: two processes that both read the same dead owner would otherwise both
        remove it, the second removing the first one's fresh lock, and both train."""
        try:
            _create_lock(path)
            return
        except FileExistsError:
            pass
        with FileLock(path.with_name(".lock.guard")):
            owner = _read_owner(path)
            if owner is not None:
                if _owner_alive(owner) or _being_written(path, owner):
                    raise self._busy(owner, path)
                path.unlink(missing_ok=True)  # stale: its process (or Slurm job) is gone
            try:
                _create_lock(path)
            except FileExistsError:  # a process that found no lock at all created one meanwhile
                raise self._busy(_read_owner(path) or {}, path) from None

    def _busy(self, owner: dict[str, Any], path: Path) -> TrainingError:
        return TrainingError(
            f"another process (pid {owner.get('pid', '?')} on {owner.get('host', '?')}) is training into "
            f"{self.path}",
            f"wait for it to finish, or choose another --out; if no such process runs, delete {path}",
        )


def _create_lock(path: Path) -> None:
    """Create ``path`` naming this process (FileExistsError if it exists)."""
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    if os.environ.get("SLURM_JOB_ID"):  # lets a requeued job on another node see that this one is gone
        me["slurm_job"] = os.environ["SLURM_JOB_ID"]
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(me))


def _read_owner(path: Path) -> dict[str, Any] | None:
    """The owner a lock names, ``{}`` when it cannot be read, None when there is no lock."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _being_written(path: Path, owner: dict[str, Any]) -> bool:
    """An empty lock under 10 s old is one whose process has just created it and is writing its name now."""
    try:
        return not owner and time.time() - path.stat().st_mtime < 10
    except OSError:
        return False


def _owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process that wrote a lock still runs: a pid on this host, or a Slurm job on another node
    (asked of Slurm); a lock from another host without a Slurm job is taken to be alive (we cannot tell)."""
    if owner.get("host") == socket.gethostname():
        return _alive(owner.get("pid"))
    if owner.get("slurm_job"):
        return slurm_state(str(owner["slurm_job"])) in ("RUNNING", "COMPLETING", "CONFIGURING")
    return bool(owner)


def lock_owner_alive(path: str | os.PathLike) -> bool:
    """Whether a run folder's ``.lock`` at ``path`` is held by a live process (False when there is none)."""
    return _owner_alive(_read_owner(Path(path)) or {})


def locked_append(path: str | os.PathLike, text: str, check=None) -> bool:
    """Append ``text`` to a file under an exclusive lock on ``<path>.lock``, so that concurrent writers (jobs of
    one sweep on several nodes) neither interleave nor both append what should be there once:
    ``check(existing_text)`` returning False skips the write. It is asked once before the lock too: what is
    already there needs no lock file (a finished run in a read-only folder writes nothing). Returns whether it
    wrote."""
    path = Path(path)
    if check is not None and path.is_file() and not check(path.read_text()):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")):
        if check is not None and not check(path.read_text() if path.is_file() else ""):
            return False
        with open(path, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return True


def _alive(pid: Any) -> bool:
    """Whether a process of this host runs. POSIX asks with signal 0; Windows asks psutil (there
    ``os.kill(pid, 0)`` would end the process)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name != "posix":
        import psutil

        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def append_result(registry: str | os.PathLike, row: dict[str, Any]) -> bool:
    """Append one run's row to the results registry (one JSON object per line), once: a run folder that already
    has a row there keeps it. Returns whether a row was written."""

    def absent(text: str) -> bool:
        return not any(r.get("run_dir") == row.get("run_dir") for r in _parse_rows(text))

    return locked_append(registry, json.dumps(row, default=str) + "\n", check=absent)


def remove_result(registry: str | os.PathLike, run_dir: str | os.PathLike) -> None:
    """Drop the row of ``run_dir`` from a results registry (a reference copy replaced by a run trained here)."""
    registry = Path(registry)
    if not registry.is_file():
        return
    target = str(Path(run_dir).resolve())
    with FileLock(registry.with_name(registry.name + ".lock")):
        kept = [r for r in _parse_rows(registry.read_text()) if r.get("run_dir") != target]
        atomic_write_text(registry, "".join(json.dumps(r, default=str) + "\n" for r in kept))


def read_results(registry: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a results registry; a line cut short by a crash is skipped rather than failing the table."""
    registry = Path(registry)
    return _parse_rows(registry.read_text()) if registry.is_file() else []


def _parse_rows(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def results_table(registry: str | os.PathLike):
    """The registry as a pandas DataFrame, one row per run and one column per metric (``unet.dice``, ...)."""
    import pandas as pd

    rows = read_results(registry)
    flat_rows = []
    for r in rows:
        base = {k: v for k, v in r.items() if k != "metrics"}
        for model, vals in (r.get("metrics") or {}).items():
            for k, v in vals.items():
                base[f"{model}.{k}"] = v
        flat_rows.append(base)
    return pd.DataFrame(flat_rows)
