"""The training loop shared by every method.

It owns what all methods have in common: set-up, data, the learning-rate schedule, validation every
``val_every`` steps, ``best.pt``/``last.pt``, resume after a disconnect, a clean stop on NaN, and the run record.
A run killed at any moment and resumed ends with the same metrics as an uninterrupted one: batches and
augmentation are pure functions of (seed, step), and ``last.pt`` holds the models, optimisers, scaler, step and
the RNG states.
"""

from __future__ import annotations

import errno
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import config as C
from .data import DATASETS, LabelSplit, SegData, TwoStreamBatches, load_dataset, make_label_split
from .data.batches import load_images
from .errors import CheckpointError, ConfigError, TrainingError
from .evaluation import predict_split, pseudo_label_dice, score_items, summarize_items, validate
from .generalist.embedding_cache import run_items
from .methods import METHODS, Method
from .methods.base import load_model_state, model_state
from .paths import results_registry, runs_dir
from .progress import use_bar
from .runs import (
    RunDir,
    append_result,
    load_checkpoint,
    read_json,
    save_checkpoint,
    save_probe,
    write_item_metrics,
    write_json,
)
from .runtime import Runtime, freed_memory_kept, provenance, setup
from .warm_start import check_sources, warm_start


@dataclass
class TrainResult:
    """What :func:`train` returns: where the run is and what it measured."""

    run_dir: Path
    metrics: dict[str, dict[str, float]]
    best_step: int
    best_val: float
    wall_time_s: float
    method: Method | None  # None for a reference run kept as records only (scsam_lite.reference)
    data: SegData
    label_split: LabelSplit


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate at ``step`` (poly 0.9 as in SSL4MIS, or linear decay)."""
    frac = min(step, total) / total
    if schedule == "poly":
        return (1.0 - frac) ** 0.9
    if schedule == "linear":
        return 1.0 - frac
    return 1.0


def _rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
    }
    np_state = np.random.get_state()
    state["numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    state["numpy_pos"] = int(np_state[2])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_training_data(cfg: C.Config) -> tuple[SegData, LabelSplit]:
    """The dataset and the labeled split of a run of ``cfg`` (no model is built)."""
    method_cls = METHODS.get(cfg.train.method)
    data = load_dataset(
        cfg.data.dataset,
        root=cfg.data.data_root,
        resolution=cfg.data.resolution,
        cache_dir=cfg.data.cache_dir,
        mask_threshold=cfg.data.mask_threshold,
    )
    cfg.data.resolution = data.resolution
    labeled = cfg.data.labeled if cfg.data.labeled <= 1 else int(cfg.data.labeled)
    split = make_label_split(
        data,
        labeled,
        seed=cfg.data.split_seed,
        unit=cfg.data.label_unit,
        require_unlabeled=method_cls.needs_unlabeled,
        unlabeled_limit=cfg.data.unlabeled_limit if method_cls.needs_unlabeled else None,
    )
    return data, split


def build_training(
    cfg: C.Config, rt: Runtime, *, embed: bool = True
) -> tuple[SegData, LabelSplit, Method, TwoStreamBatches]:
    """The data, labeled split, method and batch sampler a run of ``cfg`` trains with (``cfg.data.resolution``
    is filled in with the dataset's own when it was None). With stored SAM embeddings, the items the run uses are
    embedded here unless ``embed`` is false (a benchmark embeds only the batches it times)."""
    method_cls = METHODS.get(cfg.train.method)
    data, split = load_training_data(cfg)
    method = method_cls(cfg, data, rt)
    embeddings = getattr(method, "embeddings", None)
    # stored SAM embeddings: the items this run uses, embedded once, before step 1
    if embeddings is not None and embed:
        embeddings.ensure(run_items(data, split, unlabeled=method_cls.needs_unlabeled))
    batches = TwoStreamBatches(
        data,
        split,
        cfg.data.batch_labeled,
        cfg.data.batch_unlabeled if method_cls.needs_unlabeled else 0,
        seed=cfg.train.seed,
        device=rt.device,
        augment=cfg.data.augment,
    )
    return data, split, method, batches


def _resume_state(run: RunDir) -> dict[str, Any]:
    """``last.pt``, loaded once on the CPU (``load_state_dict`` moves it to the models' device; the RNG states must
    stay on the CPU), checked to be a training state rather than, say, a copy of ``best.pt``."""
    state = load_checkpoint(run.last_path, map_location="cpu")
    missing = [k for k in ("method", "step", "best_val", "best_step", "rng") if k not in state]
    if missing:
        raise CheckpointError(
            f"{run.last_path} holds no training state to resume from (no {', '.join(missing)}; "
            "a copy of best.pt?)",
            "resume needs the last.pt that training wrote: delete this one and start the run again "
            "(without --resume), or evaluate best.pt with `scsam-lite evaluate`",
        )
    return state


def _check_resume_config(run: RunDir, cfg: C.Config, state: dict[str, Any]) -> None:
    """A resumed run trains on with the settings it started with: the ones its last.pt (``state``) recorded
    (config.json may have been edited since), and anything given again on the command line must agree."""
    record = run.read_config()
    saved = C.config_from_dict(record["config"])
    truth, source = saved, "config.json"
    if "config" in state:
        truth, source = C.config_from_dict(state["config"]), "its last.pt"
    elif record.get("config_hash") not in (None, C.config_hash(saved)):
        raise TrainingError(
            f"{run.config_path} was edited after the run started (its settings no longer match their hash)",
            "restore the file, or start a new --out with the settings you want",
        )
    for what, other in (("config.json", saved), ("the command line", cfg)):
        changed = C.diff(truth, other)
        if changed:
            shown = ", ".join(
                f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in list(changed.items())[:6])
            )
            raise TrainingError(
                f"--resume with settings in {what} that differ from the run in {run.path} as {source} "
                f"recorded it ({shown})",
                "resume with the run's own settings (restore config.json; just `scsam-lite train --out RUN_DIR "
                "--resume`), or start a new --out with the new settings",
            )


def train(
    cfg: C.Config,
    out: str | Path,
    *,
    resume: bool = False,
    verbose: bool = True,
    command: str | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``cfg.train.method`` on ``cfg.data.dataset`` and write the run to ``out``.

    Args:
        resume: continue from ``out/checkpoints/last.pt`` when it exists (else start fresh).
        stop_after: stop (as if interrupted) after this many steps; for notebooks that train in parts.
    """
    t0 = time.perf_counter()
    C.validate(cfg)
    cfg = C.resolved(cfg)  # explicit resolution: the saved, hashed and resumed config are the same
    METHODS.get(cfg.train.method)  # an unknown method fails before anything is written
    check_sources(cfg)  # a warm start's source runs, likewise
    fresh = not Path(out).expanduser().exists()
    try:
        try:
            run = RunDir.open(out, resume=resume)
            with run.lock():
                return _train_in(
                    run, cfg, t0, resume=resume, verbose=verbose, command=command, stop_after=stop_after
                )
        except OSError as err:
            if err.errno not in _WRITE_ERRORS:
                raise
            raise TrainingError(
                f"cannot write {err.filename or out}: {err.strerror}",
                _WRITE_ERRORS[err.errno]
                + "; files written so far are whole (every write is atomic): --resume "
                "continues from the last checkpoint",
            ) from None
    except BaseException:
        # failed before it wrote anything (missing data, a bad setting): leave no empty folder behind
        if fresh:
            _remove_if_empty(Path(out).expanduser())
        raise


def _remove_if_empty(folder: Path) -> None:
    """Remove a run folder that holds nothing but empty folders."""
    if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


#: errno -> what to do, for the write errors a user can cause (and fix)
_WRITE_ERRORS = {
    errno.ENOSPC: "free disk space (checkpoints, caches) or point --out and SCSAM_CACHE_DIR at a larger disk",
    errno.EDQUOT: "free space within your quota, or point --out at another disk",
    errno.EROFS: "the folder is read-only: choose a writable --out (e.g. under /content or /kaggle/working)",
    errno.EACCES: "you may not write there: choose a folder you own as --out",
    errno.EPERM: "you may not write there: choose a folder you own as --out",
}


@dataclass
class _Training:
    """What every piece of one training run works with, built once before step 1."""

    run: RunDir
    cfg: C.Config
    rt: Runtime
    data: SegData
    split: LabelSplit
    method: Method
    batches: TwoStreamBatches
    verbose: bool


@dataclass
class _Progress:
    """What the loop carries from step to step, and what ``last.pt`` keeps of it for a resume."""

    step: int
    best_val: float
    best_step: int
    #: each model of ``checkpoint_selection().tracked`` -> (its own best validation Dice, that step)
    best_own: dict[str, tuple[float, int]]
    #: seconds spent in the loops of earlier, interrupted processes (0 for a fresh run)
    elapsed: float


def _train_in(
    run: RunDir,
    cfg: C.Config,
    t0: float,
    *,
    resume: bool,
    verbose: bool,
    command: str | None,
    stop_after: int | None,
) -> TrainResult:
    """:func:`train` once it holds the run folder's lock: set up, start or resume, the loop, the test."""
    resuming = resume and run.last_path.is_file()
    state = _resume_state(run) if resuming else {}
    if resuming:
        _check_resume_config(run, cfg, state)
    rt: Runtime = setup(
        cfg.train.seed,
        cfg.train.device,
        precision=cfg.train.precision,
        deterministic=cfg.train.deterministic,
        verbose=verbose,
    )
    data, split, method, batches = build_training(cfg, rt)
    tr = _Training(run, cfg, rt, data, split, method, batches, verbose)
    if verbose:
        _print_setup(tr)
    progress = _start_or_resume(tr, state, command)
    total = cfg.train.iterations
    already_finished = resuming and progress.step >= total and run.metrics_path.is_file()
    if already_finished:
        print(f"{run.path} has already finished with these settings: reusing it, not retraining")
    end = total if stop_after is None else min(total, progress.step + stop_after)
    probe = _prober(method, data, split, run, cfg)
    if not resuming:
        probe(0)
    wall = _loop(tr, progress, end, probe)
    metrics: dict[str, dict[str, float]] = {}
    if progress.step >= total:
        load_best(method, run, rt.device)
        if already_finished:
            metrics = read_json(run.metrics_path)
            # killed between metrics.json and its registry row: registered now, once
            row = _registry_row(tr, progress, metrics, t0)
            if append_result(results_registry(run.path), row) and verbose:
                print(f"registered the finished run in {results_registry(run.path)}")
        else:
            metrics = _test_chosen_weights(tr)
            _record_finished(tr, progress, metrics, t0)
    return TrainResult(run.path, metrics, progress.best_step, progress.best_val, wall, method, data, split)


def _print_setup(tr: _Training) -> None:
    """The data, the split and each model's size (with PEFT's table of what trains in SAM) for the student."""
    print(tr.data.summary())
    print(tr.split.description)
    method = tr.method
    for name, model in method.models.items():
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        shown = (
            f", {trainable / 1e6:.3f} M trainable" if name in method.optimizers and trainable < total else ""
        )
        print(f"{name}: {type(model).__name__}, {total / 1e6:.2f} M parameters{shown}")
        if hasattr(model, "image_encoder") and name in method.optimizers:
            from .generalist.peft import format_trainable_table, trainable_table

            print(format_trainable_table(trainable_table(model)))


def _start_or_resume(tr: _Training, state: dict[str, Any], command: str | None) -> _Progress:
    """Resume from ``state`` (``last.pt``: weights, optimisers, counters, RNG states; the history cut back to
    its step), or with no state start afresh: an empty history and a config.json of how the run was made."""
    own = tr.method.checkpoint_selection().tracked
    progress = _Progress(
        step=0, best_val=-1.0, best_step=0, best_own={m: (-1.0, 0) for m in own}, elapsed=0.0
    )
    run = tr.run
    if state:
        tr.method.load_state_dict(state["method"])
        progress.step, progress.best_val, progress.best_step = (
            state["step"],
            state["best_val"],
            state["best_step"],
        )
        saved_own = state.get("best_own", {}).items()
        progress.best_own.update({m: tuple(v) for m, v in saved_own if m in progress.best_own})
        progress.elapsed = state.get("elapsed_s", 0.0)
        _set_rng_state(state["rng"])
        run.truncate_history(progress.step)
        if tr.verbose:
            print(f"resumed from {run.last_path} at step {progress.step}")
        return progress
    run.history_path.unlink(missing_ok=True)
    started_from = warm_start(tr.method, tr.cfg)  # specialist/generalist.init_from: another run's weights
    if tr.verbose:
        for key, source in started_from.items():
            print(
                f"{key}: {', '.join(source['models'])} start from {source['method']} run {source['folder']}"
            )
    write_json(
        run.config_path,
        {
            "config": tr.cfg.to_dict(),
            "config_hash": C.config_hash(tr.cfg),
            **({"warm_start": started_from} if started_from else {}),
            "command": command or " ".join(sys.argv),
            "label_split": tr.split.description,
            "data": tr.data.summary(),
            "runtime": tr.rt.as_dict(),
            "provenance": provenance(),
        },
    )
    return progress


def _loop(tr: _Training, progress: _Progress, end: int, probe: Callable[[int], None]) -> float:
    """Train until step ``end``, validating and checkpointing every ``val_every`` steps and at the last;
    returns the seconds the run has trained, the loops of earlier processes included."""
    cfg, method, total = tr.cfg, tr.method, tr.cfg.train.iterations
    bar = use_bar()
    pbar = tqdm(
        total=total, initial=progress.step, desc=cfg.train.method, disable=not bar, dynamic_ncols=True
    )
    method.train(True)
    t_loop = time.perf_counter()
    try:
        with freed_memory_kept():  # the loop's memory is given back after it (in a notebook kernel)
            while progress.step < end:
                method.set_lr_factor(lr_factor(cfg.train.lr_schedule, progress.step, total))
                losses = method.train_step(tr.batches.batch(progress.step), progress.step)
                progress.step += 1
                pbar.update(1)
                if progress.step % cfg.train.val_every == 0 or progress.step == total:
                    val = _validate_and_keep_best(tr, progress)
                    now = progress.elapsed + time.perf_counter() - t_loop
                    _log_and_save_last(tr, progress, losses, val, now)
                    probe(progress.step)
                    text = " ".join(f"{k} {v:.3f}" for k, v in val.items())
                    loss = losses.get("loss", float("nan"))
                    if bar:
                        pbar.set_postfix_str(f"loss {loss:.3f} val dice {text}")
                    elif tr.verbose:
                        print(f"step {progress.step}/{total}  loss {loss:.4f}  val dice {text}", flush=True)
    finally:
        pbar.close()
    return progress.elapsed + time.perf_counter() - t_loop


def _validate_and_keep_best(tr: _Training, progress: _Progress) -> dict[str, float]:
    """Validate, and save ``best.pt`` (and each separately chosen model's ``best_<name>.pt``) when it did at
    least as well as before: ties go to the later, longer-trained weights."""
    method, step = tr.method, progress.step
    val = validate(method, tr.data, "val", tr.cfg.train.eval_batch_size)
    score = val[method.selection_model]
    if score >= progress.best_val:
        progress.best_val, progress.best_step = score, step
        save_checkpoint(tr.run.best_path, {"method": method.state_dict(), "step": step, "val": val})
    for name, (own_val, _) in progress.best_own.items():
        if val[name] >= own_val:
            progress.best_own[name] = (val[name], step)
            own_state = {"models": {name: model_state(method.models[name])}, "step": step, "val": val}
            save_checkpoint(tr.run.best_model_path(name), own_state)
    return val


def _log_and_save_last(
    tr: _Training, progress: _Progress, losses: dict[str, float], val: dict[str, float], now: float
) -> None:
    """One line of history.jsonl, then ``last.pt``: all a resume needs (RNG states taken after the line)."""
    method = tr.method
    lr = next(iter(method.optimizers.values())).param_groups[0]["lr"]
    record = {"step": progress.step, "time_s": round(now, 2), "lr": lr, **losses, "val_dice": val}
    record.update(_validation_extras(method, tr.data, tr.split, tr.cfg.train.eval_batch_size))
    tr.run.log(record)
    save_checkpoint(
        tr.run.last_path,
        {
            "method": method.state_dict(),
            "config": tr.cfg.to_dict(),
            "step": progress.step,
            "best_val": progress.best_val,
            "best_step": progress.best_step,
            "best_own": {m: list(v) for m, v in progress.best_own.items()},
            "elapsed_s": now,
            "rng": _rng_state(),
        },
    )


def _test_chosen_weights(tr: _Training) -> dict[str, dict[str, float]]:
    """Score the loaded test-time weights on the test split and write metrics.json with its per-image table
    (and, for volumes, the slice-by-slice 2-D scores, to be put next to the reference's numbers)."""
    data, run = tr.data, tr.run
    preds = predict_split(tr.method, data, data.splits["test"], tr.cfg.train.eval_batch_size)
    items = score_items(preds, data, "test")
    metrics = summarize_items(items)
    if data.is_volumetric:
        slices = score_items(preds, data, "test", unit="slice")
        write_item_metrics(run.slices_items_path, slices)
        write_json(run.slices_metrics_path, summarize_items(slices))
    write_item_metrics(run.items_path, items)
    write_json(run.metrics_path, metrics)
    return metrics


def _record_finished(
    tr: _Training, progress: _Progress, metrics: dict[str, dict[str, float]], t0: float
) -> None:
    """A finished run's cost goes into its config.json (beside its command and machine) and its row into the
    results registry; then the test metrics are printed."""
    row = _registry_row(tr, progress, metrics, t0)
    record = tr.run.read_config()
    record.update(wall_time_s=row["wall_time_s"], finished=row["finished"])
    write_json(tr.run.config_path, record)
    append_result(results_registry(tr.run.path), row)
    if tr.verbose:
        title = f"test metrics (best step {progress.best_step}, val dice {progress.best_val:.4f})"
        print(format_metrics(metrics, title))


def _registry_row(
    tr: _Training, progress: _Progress, metrics: dict[str, dict[str, float]], t0: float
) -> dict[str, Any]:
    """The run's row in the results registry."""
    cfg = tr.cfg
    return {
        "run_dir": str(tr.run.path.resolve()),
        "config_hash": C.config_hash(cfg),
        "method": cfg.train.method,
        "dataset": cfg.data.dataset,
        "labeled": cfg.data.labeled,
        "label_split": tr.split.description,
        "preset": cfg.preset,
        "seed": cfg.train.seed,
        "iterations": cfg.train.iterations,
        "best_step": progress.best_step,
        **{f"best_step_{m}": v[1] for m, v in progress.best_own.items()},
        "val_dice": progress.best_val,
        "metrics": metrics,
        "device": tr.rt.gpu_name or str(tr.rt.device),
        "host": platform.node(),
        # all of it: the loops of earlier, interrupted processes (resumed runs) and all of this one
        "wall_time_s": round(progress.elapsed + time.perf_counter() - t0, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def load_best(
    method: Method, run: RunDir, device: torch.device | str, selection: C.Checkpoints | None = None
) -> None:
    """The weights a run is tested with (:meth:`Method.checkpoint_selection`): ``best.pt``, then each separately
    selected model's own best.

    ``selection`` ("joint" or "separate") overrides the run's ``cotrain.checkpoints``: both can be scored from one
    run, since an sc-sam run saves its U-Net's own best either way."""
    method.load_state_dict(load_checkpoint(run.best_path, map_location=device)["method"], models_only=True)
    for name in method.checkpoint_selection().choose(selection).own:
        if not run.best_model_path(name).is_file():
            raise CheckpointError(
                f"{run.path} has no {run.best_model_path(name).name}: it was trained before every sc-sam run "
                f"saved its {name}'s own best",
                "score this run with its own selection (leave --selection out), or train it again",
            )
        state = load_checkpoint(run.best_model_path(name), map_location=device)
        load_model_state(method.models[name], state["models"][name])


def _validation_extras(method: Method, data: SegData, split: LabelSplit, batch_size: int) -> dict[str, Any]:
    """What a validation logs besides the validation Dice: each teacher's pseudo-labels of the unlabeled images
    scored against their masks (``pseudo_dice``), and a two-pass SAM's background pass alone
    (``background_dice``); the masks are read to score, never to train."""
    out: dict[str, Any] = {}
    if method.logs_pseudo_quality and len(split.unlabeled):
        out["pseudo_dice"] = pseudo_label_dice(method, data, np.sort(split.unlabeled), batch_size)
    background = getattr(method, "background_dice", None)
    if background is not None:
        value = background(data, data.splits["val"], batch_size)
        if value is not None:
            out["background_dice"] = value
    return out


def _prober(method: Method, data: SegData, split: LabelSplit, run: RunDir, cfg: C.Config):
    """A function ``probe(step)`` saving the method's probe snapshot of a few fixed unlabeled images, if it has one."""
    k = cfg.cotrain.probe_images
    if not hasattr(method, "probe") or k <= 0 or len(split.unlabeled) == 0:
        return lambda step: None
    index = np.sort(split.unlabeled)[:k]
    images = load_images(data, index, method.rt.device)

    def probe(step: int) -> None:
        save_probe(run.path / "probes" / f"step_{step:06d}.npz", method.probe(images, index, step))

    return probe


def run_dir_for(cfg: C.Config, root: str | Path | None = None) -> Path:
    """The run directory of ``cfg`` named by its config hash: the same experiment always lands in the same folder,
    so ``train(cfg, run_dir_for(cfg), resume=True)`` reuses a finished run instead of training it again."""
    cfg = C.resolved(cfg)
    return (
        Path(root) if root else runs_dir()
    ) / f"{cfg.data.dataset}-{cfg.train.method}-{C.config_hash(cfg)}"


def default_run_dir(dataset: str, method: str) -> Path:
    """A new run directory under ``runs/`` (or ``$SCSAM_RUNS_DIR``), named by dataset, method and time."""
    return runs_dir() / f"{dataset}-{method}-{time.strftime('%Y%m%d-%H%M%S')}"


def format_metrics(metrics: dict[str, dict[str, float]], title: str = "metrics") -> str:
    lines = [title]
    for model, vals in metrics.items():
        lines.append(
            f"  {model:10s} "
            + "  ".join(f"{k} {v:.4f}" for k, v in vals.items() if k in ("dice", "iou", "hd95", "asd"))
        )
    return "\n".join(lines)


def run_data(
    cfg: C.Config,
    dataset: str | None = None,
    data_root: str | None = None,
    mask_threshold: int | None = None,
) -> SegData:
    """The data a finished run is scored on: its own dataset, or ``dataset`` (at the run's resolution).

    The root is ``data_root``, else ``SCSAM_DATA_ROOT``, else the one stored in the run (a path on the machine
    that trained it). ``mask_threshold`` defaults to the run's own for its own dataset, to the dataset's rule
    for another one.
    """
    name = dataset or cfg.data.dataset
    trained, scored = DATASETS.get(cfg.data.dataset), DATASETS.get(name)
    if scored.channels != trained.channels:
        raise ConfigError(
            f"{cfg.data.dataset} has {trained.channels}-channel images, {name} {scored.channels}-channel ones: "
            "a model trained on one cannot read the other",
            "score the run on a dataset of the same kind (e.g. kvasir-seg and cvc-clinicdb)",
        )
    if mask_threshold is None and name == cfg.data.dataset:
        mask_threshold = cfg.data.mask_threshold
    return load_dataset(
        name,
        root=data_root or os.environ.get("SCSAM_DATA_ROOT") or cfg.data.data_root,
        resolution=cfg.data.resolution,
        cache_dir=cfg.data.cache_dir,
        mask_threshold=mask_threshold,
    )


def load_run(
    run_dir: str | Path,
    *,
    checkpoint: str = "best",
    device: str = "auto",
    selection: C.Checkpoints | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    mask_threshold: int | None = None,
) -> tuple[Method, SegData, C.Config]:
    """Rebuild a finished (or interrupted) run's method with its weights, its data and its config
    (``selection``: see :func:`load_best`; ``dataset``, ``data_root``, ``mask_threshold``: see :func:`run_data`).
    The method is built on the data returned, so stored SAM embeddings are of that data's items."""
    run = RunDir(run_dir)
    cfg = C.config_from_dict(run.read_config()["config"])
    method_cls = METHODS.get(cfg.train.method)
    rt = setup(cfg.train.seed, device, precision=cfg.train.precision, verbose=False)
    data = run_data(cfg, dataset, data_root, mask_threshold)
    method = method_cls(cfg, data, rt)
    path = run.best_path if checkpoint == "best" else run.last_path
    try:
        if checkpoint == "best":
            load_best(method, run, rt.device, selection)
        else:
            method.load_state_dict(load_checkpoint(path, map_location=rt.device)["method"], models_only=True)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} does not fit the {cfg.train.method} models of this run ({type(exc).__name__})",
            "point at the run directory this checkpoint came from",
        ) from None
    return method, data, cfg
