"""Reference runs: the project's own finished runs, committed with the package, so that a notebook can show real
co-training on real polyps in seconds instead of training for a quarter of an hour on a laptop CPU.

A reference run is a run folder (``config.json`` with command, commit, machine and wall time, ``history.jsonl``,
``metrics.json``, ``metrics_items.csv``, sc-sam's ``probes/``) plus, for the runs the notebooks load, ``weights.pt``:
the test-time weights of the parts that train, in fp16 (the frozen pretrained encoder is rebuilt from its own file).
No image of any dataset is stored.

:func:`train_or_load` is what the notebooks call instead of :func:`~scsam_lite.trainer.train`: when a reference run
has the same config hash it is copied into the run folder and loaded (one line says which, what it cost, and how to
retrain), otherwise the run trains as usual. ``scsam-lite reference`` lists, exports, checks and re-runs them.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import config as C
from .errors import ConfigError
from .paths import results_registry
from .runs import (
    RunDir,
    append_result,
    load_checkpoint,
    read_item_metrics,
    read_json,
    remove_result,
    save_checkpoint,
    write_json,
)

#: where the package keeps its reference runs: ``<profile>/<method>-s<seed>/``
REFERENCE_ROOT = Path(__file__).resolve().parent / "reference_runs"
#: the files of a run folder a reference run keeps (besides ``probes/*.npz`` and ``weights.pt``)
RECORD_FILES = ("config.json", "history.jsonl", "metrics.json", "metrics_items.csv")
#: further records kept when present: slice-wise scores, each checkpoint selection's scores on the test and the
#: validation images (``scsam-lite evaluate RUN --split val --selection separate``)
OPTIONAL_GLOBS = ("metrics_slices*", "metrics_test_best_*", "metrics_val_best_*")
WEIGHTS = "weights.pt"
#: marks a run folder that is a copy of a reference run (so RETRAIN knows it may replace it)
MARKER = "reference.json"


@dataclass
class ReferenceRun:
    """One committed run: ``name`` is its path under the reference root, e.g. ``lab/sc-sam-s0``."""

    name: str
    path: Path

    @property
    def record(self) -> dict[str, Any]:
        return read_json(self.path / "config.json")

    @property
    def config(self) -> C.Config:
        return C.config_from_dict(self.record["config"])

    @property
    def config_hash(self) -> str:
        return self.record["config_hash"]

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return read_json(self.path / "metrics.json")

    @property
    def has_weights(self) -> bool:
        return (self.path / WEIGHTS).is_file()

    def history(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(line) for line in (self.path / "history.jsonl").read_text().splitlines() if line]

    def cost(self) -> str:
        """What training it took, from its record: ``"300 steps in 16.2 min on a 2-core CPU (commit 1a2b3c4)"``."""
        rec = self.record
        prov = rec.get("provenance", {})
        where = rec.get("runtime", {}).get("gpu_name") or prov.get("machine", "an unrecorded machine")
        commit = prov.get("commit") or "unrecorded"
        commit = commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")
        wall = rec.get("wall_time_s")
        took = f"{wall / 60:.1f} min" if wall is not None else "an unrecorded time"
        return f"{self.config.train.iterations} steps in {took} on {where} (commit {commit})"


def _name_warm_start_sources(record: dict[str, Any]) -> None:
    """Replace each warm-start source folder (config, ``warm_start``, command) by the name of the package's
    reference run of the same config hash (``lab/unet-s0``): the same identity in the hash, and no path of the
    machine that trained it in the package. A source with no such reference run is refused: export it first."""
    by_hash = {ref.config_hash: ref.name for ref in reference_runs()}
    for key, source in record.get("warm_start", {}).items():
        name = by_hash.get(source.get("config_hash"))
        if name is None:
            raise ConfigError(
                f"{key}: the run it started from ({source.get('folder')}) is not a reference run",
                "export that run first (scsam-lite reference export NAME --run ITS_FOLDER), then this one",
            )
        section, field = key.split(".")
        folder = record["config"][section][field]
        record["config"][section][field] = name
        record["command"] = record.get("command", "").replace(folder, name)
        source["folder"] = name


def reference_runs(root: str | Path | None = None) -> list[ReferenceRun]:
    """Every reference run under ``root`` (default: the package's), sorted by name."""
    root = Path(root) if root else REFERENCE_ROOT
    if not root.is_dir():
        return []
    found = sorted(p.parent for p in root.glob("*/*/config.json"))
    return [ReferenceRun(str(p.relative_to(root)), p) for p in found]


def find_reference(
    cfg: C.Config, root: str | Path | None = None, *, weights: bool = True
) -> ReferenceRun | None:
    """The reference run that is the same experiment as ``cfg`` (same config hash), with weights unless
    ``weights`` is false, or None."""
    h = C.config_hash(C.resolved(cfg))
    for ref in reference_runs(root):
        if ref.config_hash == h and (ref.has_weights or not weights):
            return ref
    return None


def get_reference(name: str, root: str | Path | None = None) -> ReferenceRun:
    """A reference run by name (``lab/sc-sam-s0``), with the known names in the error."""
    runs = {r.name: r for r in reference_runs(root)}
    if name not in runs:
        raise ConfigError(
            f"no reference run named {name!r}",
            f"use one of: {', '.join(runs) or '(none are installed)'}; `scsam-lite reference list` shows them",
        )
    return runs[name]


# -- honesty checks -------------------------------------------------------------------------------------------------
def check_reference(ref: ReferenceRun) -> list[str]:
    """What is wrong with a reference run's record (empty when nothing): its metrics.json, and every other score
    file it keeps (``metrics_{test,val}_best_*.json``), must be the mean of its per-image file, its config must
    reproduce its hash, its history must end at its last step."""
    problems = []
    rec = ref.record
    cfg = C.config_from_dict(rec["config"])
    if C.config_hash(cfg) != rec["config_hash"]:
        problems.append(f"{ref.name}: its config hashes to {C.config_hash(cfg)}, not {rec['config_hash']}")
    problems += _summary_problems(ref.name, "metrics.json", ref.metrics, ref.path / "metrics_items.csv")
    for extra in sorted(ref.path.glob("metrics_*_best_*.json")):
        summary = read_json(extra)
        items_csv = extra.with_name(extra.stem + "_items.csv")
        problems += _summary_problems(ref.name, extra.name, summary, items_csv)
    history = ref.history()
    if not history or history[-1]["step"] != cfg.train.iterations:
        problems.append(f"{ref.name}: its history does not end at step {cfg.train.iterations}")
    return problems


def _summary_problems(name: str, what: str, summary: dict[str, Any], items_csv: Path) -> list[str]:
    """Where a metrics summary is not the mean of its per-image rows (or has no rows to be the mean of)."""
    if not items_csv.is_file():
        return [f"{name}: {what} has no per-image file {items_csv.name}"]
    problems = []
    items = read_item_metrics(items_csv)
    if sorted(items) != sorted(summary):
        problems.append(f"{name}: per-image models {sorted(items)} but {what} has {sorted(summary)}")
    for model, model_summary in summary.items():
        rows = list(items.get(model, {}).values())
        if len(rows) != int(model_summary["n"]):
            problems.append(
                f"{name}: {model} has {len(rows)} per-image rows, {what} says {model_summary['n']}"
            )
            continue
        for key in (k for k in model_summary if k != "n" and not k.endswith("_std")):
            mean = float(np.mean([r[key] for r in rows]))
            if not np.isclose(mean, model_summary[key], rtol=1e-6, atol=1e-9):
                problems.append(
                    f"{name}: {model} {key} is {model_summary[key]} in {what} but its images average {mean}"
                )
    return problems


# -- export: a finished run becomes a reference run -------------------------------------------------------------------
#: a reference run's name: ``<folder>/<run>``, each a plain name (the folder the export replaces is always inside
#: the reference root, never a path of the user's)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name: str) -> None:
    """Refuse a reference name that is not ``<folder>/<run>`` of plain names: an absolute path or ``..`` would
    make the export replace a folder outside the reference root."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{name!r} is not a reference run name",
            "name it <folder>/<run> with letters, digits, '.', '_' or '-' only, e.g. lab/unet-s0",
        )


def export_reference(
    run_dir: str | Path,
    name: str,
    *,
    weights: bool = True,
    probes: bool = True,
    root: str | Path | None = None,
    device: str = "cpu",
) -> ReferenceRun:
    """Copy a finished run's records (and, with ``weights``, its test-time trainable weights in fp16) to
    ``root/name``; refuses a run whose records disagree with each other."""
    check_name(name)
    run = RunDir(run_dir)
    if not run.metrics_path.is_file():
        raise ConfigError(
            f"{run.path} has no metrics.json: it has not finished", "let it finish (or --resume it)"
        )
    dest = (Path(root) if root else REFERENCE_ROOT) / name
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for f in RECORD_FILES:
            shutil.copy2(run.path / f, tmp / f)
        for pattern in OPTIONAL_GLOBS:
            for f in run.path.glob(pattern):
                shutil.copy2(f, tmp / f.name)
        if probes and (run.path / "probes").is_dir():
            (tmp / "probes").mkdir()
            for f in sorted((run.path / "probes").glob("step_*.npz")):
                shutil.copy2(f, tmp / "probes" / f.name)
        # no path of the machine that trained it goes into the package
        record = read_json(tmp / "config.json")
        for where in {str(run.path.resolve()), str(run.path)}:
            record["command"] = record.get("command", "").replace(where, "RUN_DIR")
        _name_warm_start_sources(record)
        write_json(tmp / "config.json", record)
        problems = check_reference(ReferenceRun(name, tmp))
        if problems:
            raise ConfigError(
                "; ".join(problems), "export a run whose records were written by `scsam-lite train`"
            )
        if weights:
            from .trainer import load_run

            method, _, _ = load_run(run.path, device=device)
            state = {
                k: {n: t.half() if t.is_floating_point() else t for n, t in _model_state(m).items()}
                for k, m in method.models.items()
            }
            save_checkpoint(tmp / WEIGHTS, {"models": state})
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ReferenceRun(name, dest)


def _model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    from .methods.base import model_state

    return model_state(model)


# -- load: a reference run becomes a run folder ---------------------------------------------------------------------
def copy_records(ref: ReferenceRun, run_dir: str | Path, verbose: bool = False) -> tuple[int, float]:
    """Copy ``ref``'s records (no weights) into ``run_dir`` as a finished run, with its row in the results registry
    beside it, so tables and plots (``sweep_table``, ``results_table``) read it like a run trained here. Returns
    the best validation step and Dice."""
    from .methods import METHODS

    cfg, rec = ref.config, ref.record
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    for f in ref.path.iterdir():
        if f.is_file() and f.name != WEIGHTS:
            shutil.copy2(f, run.path / f.name)
    if (ref.path / "probes").is_dir():
        shutil.copytree(ref.path / "probes", run.path / "probes", dirs_exist_ok=True)
    best_step, best_val = best_validation(ref.history(), METHODS.get(cfg.train.method).selection_model)
    write_json(run.path / MARKER, {"reference": ref.name, "copied": time.strftime("%Y-%m-%dT%H:%M:%S")})
    append_result(
        results_registry(run.path),
        {
            "run_dir": str(run.path.resolve()),
            "config_hash": rec["config_hash"],
            "method": cfg.train.method,
            "dataset": cfg.data.dataset,
            "labeled": cfg.data.labeled,
            "label_split": rec.get("label_split"),
            "preset": cfg.preset,
            "seed": cfg.train.seed,
            "iterations": cfg.train.iterations,
            "best_step": best_step,
            "val_dice": best_val,
            "metrics": ref.metrics,
            "device": rec.get("runtime", {}).get("gpu_name") or rec.get("runtime", {}).get("device"),
            "host": rec.get("provenance", {}).get("host"),
            "wall_time_s": float(rec.get("wall_time_s") or 0.0),
            "finished": rec.get("finished"),
            "reference": ref.name,
        },
    )
    if verbose:
        print(f"reference run {ref.name} (records): {ref.cost()}")
    return best_step, best_val


def materialize(
    ref: ReferenceRun,
    run_dir: str | Path,
    device: str = "auto",
    verbose: bool = True,
    data_root: str | None = None,
    cache_dir: str | None = None,
):
    """Copy ``ref`` into ``run_dir`` as a finished run (:func:`copy_records`, plus ``checkpoints/best.pt`` rebuilt
    from its fp16 weights when it has them) and return it as a :class:`~scsam_lite.trainer.TrainResult`; ``load_run``,
    ``scsam-lite evaluate`` and ``compare`` then work on it like on any run. A reference run kept as records only
    (the folder's size budget) gives its metrics, history, probes, data and split, and ``method=None``."""
    from .methods.base import load_model_state
    from .runtime import setup
    from .trainer import TrainResult, build_training, load_training_data

    cfg = ref.config
    cfg.data.data_root, cfg.data.cache_dir = data_root, cache_dir  # here, not on the machine that trained it
    wall = float(ref.record.get("wall_time_s") or 0.0)
    if not ref.has_weights:
        data, split = load_training_data(cfg)
        best_step, best_val = copy_records(ref, run_dir)
        if verbose:
            print(
                f"loaded reference run {ref.name} (its records; no weights are kept for it): {ref.cost()}; "
                "RETRAIN=True trains it here instead"
            )
        return TrainResult(Path(run_dir), ref.metrics, best_step, best_val, wall, None, data, split)
    rt = setup(cfg.train.seed, device, precision=cfg.train.precision, verbose=False)
    data, split, method, _ = build_training(cfg, rt, embed=False)
    state = load_checkpoint(ref.path / WEIGHTS, map_location=rt.device)["models"]
    for name, model in method.models.items():
        params = dict(model.state_dict())
        load_model_state(model, {k: v.to(params[k].dtype) for k, v in state[name].items()})
    run = RunDir(run_dir)
    best_step, best_val = copy_records(ref, run.path)
    (run.path / "checkpoints").mkdir(exist_ok=True)
    save_checkpoint(
        run.best_path, {"method": {"models": {k: _model_state(m) for k, m in method.models.items()}}}
    )
    # the weights stored are the test-time ones: a separately selected model is already in them
    for name in method.checkpoint_selection().own:
        save_checkpoint(run.best_model_path(name), {"models": {name: _model_state(method.models[name])}})
    method.train(False)
    if verbose:
        print(f"loaded reference run {ref.name}: {ref.cost()}; RETRAIN=True trains it here instead")
    return TrainResult(run.path, ref.metrics, best_step, best_val, wall, method, data, split)


def best_validation(history: list[dict[str, Any]], model: str) -> tuple[int, float]:
    """The step and value of the best validation Dice of ``model`` (ties: the later step, as the trainer does)."""
    best_step, best_val = 0, -1.0
    for row in history:
        val = row["val_dice"][model]
        if val >= best_val:
            best_step, best_val = row["step"], val
    return best_step, best_val


def is_reference_copy(run_dir: str | Path) -> bool:
    return (Path(run_dir) / MARKER).is_file()


def train_or_load(
    cfg: C.Config,
    run_dir: str | Path,
    *,
    retrain: bool = False,
    verbose: bool = False,
    root: str | Path | None = None,
):
    """Train ``cfg`` into ``run_dir`` (resuming or reusing a finished run there) unless a reference run is the same
    experiment: then load that one, unless ``retrain``. Returns a :class:`~scsam_lite.trainer.TrainResult`."""
    from .trainer import train

    ref = None if retrain else find_reference(cfg, root, weights=False)
    if ref is not None:
        return materialize(
            ref, run_dir, device=cfg.train.device, data_root=cfg.data.data_root, cache_dir=cfg.data.cache_dir
        )
    if is_reference_copy(
        run_dir
    ):  # RETRAIN after a load: the copy and its registry row go, the run trains anew
        remove_result(results_registry(run_dir), run_dir)
        shutil.rmtree(run_dir)
    return train(cfg, run_dir, resume=True, verbose=verbose)


def weights_loaded(result, needed_by: str = "this cell", root: str | Path | None = None) -> bool:
    """Whether ``result`` (what :func:`train_or_load` returned) holds trained models. A reference run kept as
    records only (the package's size budget) has none: then print one line saying that ``needed_by`` is skipped,
    why, and how to get the weights (a seed whose reference run keeps them, or ``RETRAIN=True`` with what training
    cost when the run was made), and return False, so that a notebook cell skips instead of failing."""
    if result.method is not None:
        return True
    marker = Path(result.run_dir) / MARKER
    runs = {r.name: r for r in reference_runs(root)}
    ref = runs.get(read_json(marker).get("reference", "")) if marker.is_file() else None
    retrain = "RETRAIN=True (SCSAM_RETRAIN=1) trains"
    if ref is None:
        print(f"{needed_by}: skipped, no trained model is loaded here; {retrain} one")
        return False
    stem = re.sub(r"-s\d+$", "", ref.name)
    seeds = [
        m.group(1)
        for name, r in runs.items()
        if r.has_weights and (m := re.fullmatch(rf"{re.escape(stem)}-s(\d+)", name))
    ]
    other = f" SEED = {' or '.join(seeds)} loads one that keeps them;" if seeds else ""
    print(
        f"{needed_by}: skipped, the reference run {ref.name} keeps its records, not its weights.{other} "
        f"{retrain} it here ({ref.cost()})"
    )
    return False


def rerun_command(ref: ReferenceRun, out: str = "RUN_DIR") -> str:
    """The command that trains ``ref`` again from its record (then ``scsam-lite compare`` the two)."""
    return f"scsam-lite reference rerun {ref.name} --out {out}"


def rerun(ref: ReferenceRun, out: str | Path, *, verbose: bool = True):
    """Train ``ref``'s recorded config again into ``out`` (the data root from this machine's settings)."""
    from .trainer import train

    cfg = ref.config
    for key in ("data.data_root", "data.cache_dir"):
        C.set_value(cfg, key, None)
    if C.config_hash(cfg) != ref.config_hash:
        raise ConfigError(f"{ref.name}'s config no longer hashes to its record", "reinstall the package")
    return train(cfg, out, resume=True, verbose=verbose, command=rerun_command(ref, str(out)))


def profile_costs(profile: str, methods: list[str], seed: int = 0, root: str | Path | None = None) -> str:
    """What training ``methods`` costs on ``profile``, read from its reference runs' records (one line each), for
    a notebook's first cells: measured numbers, never typed-in ones."""
    runs = {r.name: r for r in reference_runs(root)}
    lines = []
    for method in methods:
        ref = runs.get(f"{profile}/{method}-s{seed}")
        if ref is None:
            lines.append(f"  {method}: no reference run of the {profile} profile yet (it trains here)")
        else:
            kept = "weights kept" if ref.has_weights else "records kept"
            lines.append(f"  {method}: {ref.cost()}; {kept}, loaded in seconds unless RETRAIN")
    return f"{profile} profile, as measured by the reference runs:\n" + "\n".join(lines)
