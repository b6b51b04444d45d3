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
from .runtime import Runtime, provenance, setup


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
    """:func:`train` once it holds the run folder's lock."""
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
    if verbose:
        print(data.summary())
        print(split.description)
        for name, model in method.models.items():
            total = sum(p.numel() for p in model.parameters())
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            shown = (
                f", {trainable / 1e6:.3f} M trainable"
                if name in method.optimizers and trainable < total
                else ""
            )
            print(f"{name}: {type(model).__name__}, {total / 1e6:.2f} M parameters{shown}")
            if hasattr(model, "image_encoder") and name in method.optimizers:
                from .generalist.peft import format_trainable_table, trainable_table

                print(format_trainable_table(trainable_table(model)))

    step, best_val, best_step, elapsed = 0, -1.0, 0, 0.0
    own = dict.fromkeys([*method.own_best_saved, *method.separately_selected()])
    best_own: dict[str, tuple[float, int]] = {m: (-1.0, 0) for m in own}
    if resuming:
        method.load_state_dict(state["method"])
        step, best_val, best_step = state["step"], state["best_val"], state["best_step"]
        best_own.update({m: tuple(v) for m, v in state.get("best_own", {}).items() if m in best_own})
        elapsed = state.get("elapsed_s", 0.0)
        _set_rng_state(state["rng"])
        run.truncate_history(step)
        if verbose:
            print(f"resumed from {run.last_path} at step {step}")
    else:
        run.history_path.unlink(missing_ok=True)
        write_json(
            run.config_path,
            {
                "config": cfg.to_dict(),
                "config_hash": C.config_hash(cfg),
                "command": command or " ".join(sys.argv),
                "label_split": split.description,
                "data": data.summary(),
                "runtime": rt.as_dict(),
                "provenance": provenance(),
            },
        )

    already_finished = resuming and step >= cfg.train.iterations and run.metrics_path.is_file()
    if already_finished:
        print(f"{run.path} has already finished with these settings: reusing it, not retraining")
    total = cfg.train.iterations
    end = total if stop_after is None else min(total, step + stop_after)
    probe = _prober(method, data, split, run, cfg)
    if not resuming:
        probe(0)
    bar = use_bar()
    pbar = tqdm(total=total, initial=step, desc=cfg.train.method, disable=not bar, dynamic_ncols=True)
    method.train(True)
    t_loop = time.perf_counter()
    losses: dict[str, float] = {}
    try:
        while step < end:
            method.set_lr_factor(lr_factor(cfg.train.lr_schedule, step, total))
            losses = method.train_step(batches.batch(step), step)
            step += 1
            pbar.update(1)
            if step % cfg.train.val_every == 0 or step == total:
                val = validate(method, data, "val", cfg.train.eval_batch_size)
                score = val[method.selection_model]
                if score >= best_val:  # ties go to the later, longer-trained checkpoint
                    best_val, best_step = score, step
                    save_checkpoint(run.best_path, {"method": method.state_dict(), "step": step, "val": val})
                for name, (own_val, _) in best_own.items():  # models chosen on their own validation Dice
                    if val[name] >= own_val:
                        best_own[name] = (val[name], step)
                        own_state = {
                            "models": {name: model_state(method.models[name])},
                            "step": step,
                            "val": val,
                        }
                        save_checkpoint(run.best_model_path(name), own_state)
                now = elapsed + time.perf_counter() - t_loop
                lr = next(iter(method.optimizers.values())).param_groups[0]["lr"]
                record = {"step": step, "time_s": round(now, 2), "lr": lr, **losses, "val_dice": val}
                record.update(_validation_extras(method, data, split, cfg.train.eval_batch_size))
                run.log(record)
                save_checkpoint(
                    run.last_path,
                    {
                        "method": method.state_dict(),
                        "config": cfg.to_dict(),
                        "step": step,
                        "best_val": best_val,
                        "best_step": best_step,
                        "best_own": {m: list(v) for m, v in best_own.items()},
                        "elapsed_s": now,
                        "rng": _rng_state(),
                    },
                )
                probe(step)
                text = " ".join(f"{k} {v:.3f}" for k, v in val.items())
                if bar:
                    pbar.set_postfix_str(f"loss {losses.get('loss', float('nan')):.3f} val dice {text}")
                elif verbose:
                    print(
                        f"step {step}/{total}  loss {losses.get('loss', float('nan')):.4f}  val dice {text}",
                        flush=True,
                    )
    finally:
        pbar.close()

    wall = elapsed + time.perf_counter() - t_loop
    metrics: dict[str, dict[str, float]] = {}

    def row(metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
        """The run's row in the results registry."""
        return {
            "run_dir": str(run.path.resolve()),
            "config_hash": C.config_hash(cfg),
            "method": cfg.train.method,
            "dataset": cfg.data.dataset,
            "labeled": cfg.data.labeled,
            "label_split": split.description,
            "preset": cfg.preset,
            "seed": cfg.train.seed,
            "iterations": total,
            "best_step": best_step,
            **{f"best_step_{m}": v[1] for m, v in best_own.items()},
            "val_dice": best_val,
            "metrics": metrics,
            "device": rt.gpu_name or str(rt.device),
            "host": platform.node(),
            # all of it: the loops of earlier, interrupted processes (resumed runs) and all of this one
            "wall_time_s": round(elapsed + time.perf_counter() - t0, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    if step >= total:
        load_best(method, run, rt.device)
        if already_finished:
            metrics = read_json(run.metrics_path)
            # killed between metrics.json and its registry row: registered now, once
            if append_result(results_registry(run.path), row(metrics)) and verbose:
                print(f"registered the finished run in {results_registry(run.path)}")
            return TrainResult(run.path, metrics, best_step, best_val, wall, method, data, split)
        preds = predict_split(method, data, data.splits["test"], cfg.train.eval_batch_size)
        items = score_items(preds, data, "test")
        metrics = summarize_items(items)
        if data.is_volumetric:  # also slice by slice in 2D, to be put next to the reference's numbers
            slices = score_items(preds, data, "test", unit="slice")
            write_item_metrics(run.slices_items_path, slices)
            write_json(run.slices_metrics_path, summarize_items(slices))
        write_item_metrics(run.items_path, items)
        write_json(run.metrics_path, metrics)
        record = run.read_config()  # the run's cost, beside its command and machine
        record.update(wall_time_s=row(metrics)["wall_time_s"], finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        write_json(run.config_path, record)
        append_result(results_registry(run.path), row(metrics))
        if verbose:
            print(format_metrics(metrics, f"test metrics (best step {best_step}, val dice {best_val:.4f})"))
    return TrainResult(run.path, metrics, best_step, best_val, wall, method, data, split)


def load_best(method: Method, run: RunDir, device: torch.device | str, selection: str | None = None) -> None:
    """The weights a run is tested with: ``best.pt``, then each separately selected model's own best.

    ``selection`` ("joint" or "separate") overrides the run's ``cotrain.checkpoints``: both can be scored from one
    run, since an sc-sam run saves its U-Net's own best either way."""
    method.load_state_dict(load_checkpoint(run.best_path, map_location=device)["method"], models_only=True)
    names = method.separately_selected()
    if selection == "joint":
        names = []
    elif selection == "separate":
        names = list(method.own_best_saved)
    for name in names:
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
    selection: str | None = None,
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
