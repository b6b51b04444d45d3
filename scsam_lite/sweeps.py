"""Sweeps: the paper's ablations as grids of configs, run once each and read back from the results registry.

A grid is a list of labelled variants (config overrides) of one method on top of a preset. :func:`sweep` runs every
(variant, seed) that is not already in the registry (same :func:`~scsam_lite.config.config_hash`), resuming a run
that was interrupted, so a sweep can be stopped and started again at any time and only does what is missing.
:func:`sweep_table` joins the plan with the registry, so a plot knows which variant each row is.

Ramp-up lengths are given as fractions of the preset's iterations, so one grid fits the quick, classroom and
paper schedules alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as C
from .errors import ConfigError
from .paths import runs_dir
from .registry import Registry
from .runs import read_results


@dataclass
class Variant:
    """One point of a grid: a label for plots and the overrides it applies.

    ``relative`` holds integer keys given as a fraction of ``train.iterations`` (e.g. a ramp-up length).
    """

    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    relative: dict[str, float] = field(default_factory=dict)


@dataclass
class Grid:
    name: str
    description: str
    variants: list[Variant]
    method: str = "sc-sam"
    #: what the variants change, for axis titles
    axis: str = "variant"


GRIDS: Registry[Grid] = Registry("sweep grid")


def _grid(g: Grid) -> None:
    GRIDS.register(g.name, g)


_grid(
    Grid(
        "rampup",
        "SAM's ramp-up on the U-Net's pseudo-labels: off (full weight from step 0), several T, and the shape",
        [
            Variant("off", {"cotrain.rampup_length": 0}),
            Variant("T = 1/4", relative={"cotrain.rampup_length": 0.25}),
            Variant("T = 1/2", relative={"cotrain.rampup_length": 0.5}),
            Variant("T = 1", relative={"cotrain.rampup_length": 1.0}),
            Variant("T = 1/2, no 5", {"cotrain.rampup_scale": 1.0}, {"cotrain.rampup_length": 0.5}),
        ],
        axis="ramp-up",
    )
)
_grid(
    Grid(
        "backbone",
        "the specialist's backbone",
        [Variant(name, {"specialist.name": name}) for name in ("unet", "unet++", "resunet", "swin")],
        axis="specialist",
    )
)
_grid(
    Grid(
        "prompts",
        "how many points are sampled from the U-Net's prediction, and how",
        [
            Variant(f"{p}+{n}", {"prompts.n_pos": p, "prompts.n_neg": n})
            for p, n in ((1, 0), (1, 1), (3, 3), (5, 5), (10, 10))
        ]
        + [Variant("5+5 interior", {"prompts.n_pos": 5, "prompts.n_neg": 5, "prompts.strategy": "interior"})],
        axis="positive + negative points",
    )
)
_grid(
    Grid(
        "prompt-type",
        "points, a box, or both from the U-Net's prediction",
        [Variant(kind, {"prompts.kind": kind}) for kind in ("points", "box", "points+box")],
        axis="prompt",
    )
)
_grid(
    Grid(
        "labels",
        "the share of labeled images",
        [Variant(f"{r:.0%}", {"data.labeled": r}) for r in (0.05, 0.1, 0.25, 0.5)],
        axis="labeled",
    )
)
_grid(
    Grid(
        "peft",
        "what trains in SAM's encoder: Med-SA adapters, LoRA, or nothing",
        [Variant(p, {"generalist.peft": p}) for p in ("adapter", "lora", "none")],
        axis="PEFT",
    )
)
_grid(
    Grid(
        "tokens",
        "the reference's learned tokens from the image embedding (KnowSAM), off and on",
        [Variant("off", {"cotrain.learned_tokens": False}), Variant("on", {"cotrain.learned_tokens": True})],
        axis="learned tokens",
    )
)
_grid(
    Grid(
        "fidelity",
        "our co-training step against the reference code's: each remaining difference alone, our earlier choices "
        "(loss scale 0.5, entropy of the unlabeled images), then the reference's step (docs/differences.md, 'Differences from the "
        "reference code'); every run saves both models' own bests, so `scsam-lite evaluate RUN --selection joint` "
        "or `separate` scores either checkpoint choice from the same run",
        [
            Variant("ours", {}),
            Variant("loss x0.5", {"cotrain.loss_scale": 0.5}),
            Variant("entropy: unlabeled", {"cotrain.entropy_scope": "unlabeled"}),
            Variant("unlabeled: strong", {"cotrain.unlabeled_view": "strong"}),
            Variant("SAM: two-pass", {"cotrain.sam_output": "two-pass"}),
            Variant(
                "SAM: two-pass, per-class tokens",
                {"cotrain.sam_output": "two-pass", "cotrain.learned_tokens": "per-class"},
            ),
            # everything the reference code runs that the options reach (docs/differences.md: 'Differences from the reference
            # code'): its two passes with per-class tokens, its unnormalised point encoding, its squared Dice, its
            # linear decay and a ramp-up over a quarter of the run (10,000 of its 40,000 iterations)
            Variant(
                "reference",
                {
                    "cotrain.loss_scale": 1.0,
                    "cotrain.entropy_scope": "batch",
                    "cotrain.unlabeled_view": "strong",
                    "cotrain.sam_output": "two-pass",
                    "cotrain.checkpoints": "separate",
                    "cotrain.learned_tokens": "per-class",
                    "cotrain.dice_denominator": "squared",
                    "generalist.point_encoding": "reference",
                    "train.lr_schedule": "linear",
                },
                {"cotrain.rampup_length": 0.25},
            ),
        ],
        axis="co-training step",
    )
)


@dataclass
class PlannedRun:
    grid: str
    label: str
    seed: int
    config: C.Config
    config_hash: str
    run_dir: Path


def folder_name(label: str) -> str:
    """A folder-name form of a variant label: ``"T = 1/2, no 5"`` -> ``"T-1of2-no-5"``, ``"5+5"`` -> ``"5-plus-5"``."""
    text = label.replace("/", "of").replace("+", " plus ").replace("%", "pct")
    return "-".join("".join(c if c.isalnum() else " " for c in text).split()) or "variant"


def plan(
    grid: str,
    preset: str = "quick",
    seeds: list[int] | tuple[int, ...] = (0,),
    overrides: dict[str, Any] | None = None,
    out: str | Path | None = None,
    method: str | None = None,
    splits: bool = False,
    variants: list[str] | None = None,
) -> list[PlannedRun]:
    """Every (variant, seed) of ``grid`` as a full config and its run directory under ``out``; with ``splits``
    each seed also draws its own labeled split (``data.split_seed``), as the reference runs do; ``variants``
    keeps only those, each named by its label or its folder name (``SAM-two-pass-per-class-tokens``: the form to
    use on the command line, where a label may hold a comma)."""
    g = GRIDS.get(grid)
    if variants:
        known = {v.label for v in g.variants} | {folder_name(v.label) for v in g.variants}
        unknown = sorted(set(variants) - known)
        if unknown:
            raise ConfigError(
                f"grid {grid!r} has no variant {', '.join(map(repr, unknown))}",
                "name them by folder name: " + ", ".join(folder_name(v.label) for v in g.variants),
            )
    out = Path(out) if out else runs_dir() / "sweeps"
    base = C.build_config(preset, overrides, method=method or g.method)
    runs = []
    for variant in g.variants:
        if variants and variant.label not in variants and folder_name(variant.label) not in variants:
            continue
        for seed in seeds:
            cfg = copy.deepcopy(base)
            for key, value in variant.overrides.items():
                C.set_value(cfg, key, value)
            for key, frac in variant.relative.items():
                C.set_value(cfg, key, max(1, round(frac * cfg.train.iterations)))
            C.set_value(cfg, "train.seed", seed)
            if splits:
                C.set_value(cfg, "data.split_seed", seed)
            C.validate(cfg)
            h = C.config_hash(cfg)
            slug = folder_name(variant.label)
            runs.append(PlannedRun(grid, variant.label, seed, cfg, h, out / f"{grid}-{slug}-s{seed}-{h}"))
    hashes = [r.config_hash for r in runs]
    if len(set(hashes)) != len(hashes):
        raise ConfigError(
            f"grid {grid!r} has variants that are the same experiment under {preset!r}",
            "check the overrides given with --set: one of them may undo what the grid varies",
        )
    return runs


def finished_hashes(out: str | Path) -> set[str]:
    """Config hashes of the runs already in the registry beside ``out``'s run directories."""
    registry = Path(out) / "results.jsonl"
    return {row["config_hash"] for row in read_results(registry)} if registry.is_file() else set()


def _submit_missing(
    todo: list[PlannedRun],
    launcher: str,
    root: Path,
    slurm: Any,
    command: str,
    verbose: bool,
    dry_run: bool,
    wait: bool,
) -> None:
    """Hand the missing runs to a job launcher (slurm, submitit-local) instead of training them here; with
    ``wait``, block until the jobs end and report each failed one without hiding the others."""
    from .launchers import SlurmOptions, submit

    if dry_run:
        for r in todo:
            print(f"would submit {r.label}, seed {r.seed} -> {r.run_dir}")
        return
    jobs = submit(todo, launcher, root, slurm or SlurmOptions(), command, verbose)
    if wait:
        for job in jobs:
            try:
                job.result()
            except Exception as exc:  # one failed job does not hide the others; --status shows its log
                print(f"job {job.job_id} failed: {str(exc).splitlines()[-1] if str(exc) else exc}")


def _copy_reference_runs(todo: list[PlannedRun], dry_run: bool, verbose: bool) -> None:
    """Copy the records of the project's own finished run of a config instead of training it; the runs so
    provided are removed from ``todo``, in place (a dry run copies and removes nothing)."""
    from .reference import copy_records, find_reference

    for r in list(todo):
        ref = find_reference(r.config, weights=False)
        if ref is not None and not dry_run:
            copy_records(ref, r.run_dir, verbose=verbose)
            todo.remove(r)


def _train_missing(
    todo: list[PlannedRun], train: Callable[..., Any], command: str, dry_run: bool, verbose: bool
) -> None:
    """Train the missing runs here, one after the other, each resuming what an interrupted sweep left; ``train``
    is passed in because :func:`sweep` imports it up front."""
    for i, r in enumerate(todo, 1):
        if verbose:
            print(f"[{i}/{len(todo)}] {r.label}, seed {r.seed} -> {r.run_dir}", flush=True)
        if dry_run:
            continue
        train(
            r.config,
            r.run_dir,
            resume=True,
            verbose=False,
            command=command,
        )


def sweep(
    grid: str,
    preset: str = "quick",
    seeds: list[int] | tuple[int, ...] = (0,),
    overrides: dict[str, Any] | None = None,
    out: str | Path | None = None,
    method: str | None = None,
    verbose: bool = True,
    dry_run: bool = False,
    splits: bool = False,
    launcher: str = "local",
    slurm=None,
    wait: bool = False,
    use_reference: bool = False,
    variants: list[str] | None = None,
    reference_only: bool = False,
) -> list[PlannedRun]:
    """Run what is missing of ``grid`` (see the module docstring); returns the plan.

    ``launcher``: ``local`` trains here, one run after the other; ``slurm`` submits each missing run as a job of
    one array (``slurm``: a :class:`~scsam_lite.launchers.SlurmOptions`) and returns at once, unless ``wait``;
    ``submitit-local`` runs the same jobs as local processes (see :mod:`scsam_lite.launchers`). With
    ``use_reference``, a config that is one of the package's reference runs is copied from its records instead of
    trained (notebook 05 on the ``lab`` profile); ``reference_only`` then trains nothing and says what is missing."""
    from .launchers import LAUNCHERS
    from .trainer import train

    if launcher not in LAUNCHERS:
        raise ConfigError(f"unknown launcher {launcher!r}", f"use one of {', '.join(LAUNCHERS)}")
    runs = plan(grid, preset, seeds, overrides, out, method, splits, variants)
    root = runs[0].run_dir.parent
    done = finished_hashes(root)
    todo = [r for r in runs if r.config_hash not in done]
    command = f"scsam-lite sweep {grid} --preset {preset} --seeds {','.join(map(str, seeds))}" + (
        " --splits" if splits else ""
    )
    if verbose:
        print(
            f"sweep {grid} ({preset}, seeds {list(seeds)}): {len(runs)} runs, {len(runs) - len(todo)} already done"
        )
    if launcher != "local":
        _submit_missing(todo, launcher, root, slurm, command, verbose, dry_run, wait)
        return runs
    if use_reference or reference_only:  # the project's own finished runs of a config: records, no training
        _copy_reference_runs(todo, dry_run, verbose)
        if reference_only:
            for r in todo:
                if verbose:
                    print(
                        f"no reference run yet for {r.label}, seed {r.seed}: not trained here (reference_only)"
                    )
            return runs
    _train_missing(todo, train, command, dry_run, verbose)
    return runs


def sweep_table(
    grid: str,
    preset: str = "quick",
    seeds: list[int] | tuple[int, ...] = (0,),
    overrides: dict[str, Any] | None = None,
    out: str | Path | None = None,
    method: str | None = None,
    splits: bool = False,
    variants: list[str] | None = None,
):
    """A pandas table, one row per finished (variant, seed, evaluated model) with Dice, IoU, HD95 and ASD."""
    import pandas as pd

    from .runs import RunDir

    runs = plan(grid, preset, seeds, overrides, out, method, splits, variants)
    registry = runs[0].run_dir.parent / "results.jsonl"
    rows = {r["config_hash"]: r for r in read_results(registry)} if registry.is_file() else {}
    out_rows = []
    for r in runs:
        row = rows.get(r.config_hash)
        if row is not None:  # one config in two grids (a default) has one folder: the registry's
            where = Path(row.get("run_dir") or r.run_dir)
            out_rows += table_rows(
                r, row["metrics"], RunDir(where if where.is_dir() else r.run_dir).history()
            )
    return pd.DataFrame(out_rows, columns=TABLE_COLUMNS)


#: the columns of :func:`sweep_table`: test metrics, and the validation Dice the trainer logged (``val_best``: the
#: best check, ``val_last``: the mean of the last three checks; empty where a run has no history)
TABLE_COLUMNS = [
    "grid",
    "variant",
    "order",
    "seed",
    "model",
    "dice",
    "iou",
    "hd95",
    "asd",
    "val_best",
    "val_last",
]


def table_rows(
    run: PlannedRun, metrics: dict[str, dict[str, float]], history: list[dict[str, Any]]
) -> list[dict]:
    """The rows of one finished run for :func:`sweep_table`: one per evaluated model, validation beside test, so a
    reading can decide on validation and report test."""
    order = {v.label: i for i, v in enumerate(GRIDS.get(run.grid).variants)}
    out = []
    for model, m in metrics.items():
        vals = [row["val_dice"][model] for row in history if model in row.get("val_dice", {})]
        out.append(
            {
                "grid": run.grid,
                "variant": run.label,
                "order": order[run.label],
                "seed": run.seed,
                "model": model,
                **{k: m.get(k) for k in ("dice", "iou", "hd95", "asd")},
                "val_best": max(vals) if vals else None,
                "val_last": sum(vals[-3:]) / len(vals[-3:]) if vals else None,
            }
        )
    return out


def default_variant(
    grid: str, preset: str = "quick", overrides: dict[str, Any] | None = None, method: str | None = None
) -> str | None:
    """The label of ``grid``'s variant that changes nothing in ``preset`` (today's default, the one every other
    variant is read against), or None when the grid has none there."""
    base = C.build_config(preset, overrides, method=method or GRIDS.get(grid).method)
    C.set_value(base, "train.seed", 0)
    C.set_value(base, "data.split_seed", 0)
    target = C.config_hash(base)
    try:
        runs = plan(grid, preset, (0,), overrides, Path("."), method, splits=True)
    except ConfigError:  # a grid the preset cannot run (peft on lab's stored embeddings) has no default there
        return None
    for r in runs:
        if r.config_hash == target:
            return r.label
    return None


#: metrics where lower is better (boundary distances)
LOWER_IS_BETTER = ("hd95", "asd")


def outcome(table, model: str = "sam", metric: str = "dice") -> str:
    """One line on what a :func:`sweep_table` says for ``model``: the variant with the best mean ``metric`` over
    seeds, its lead over the runner-up, and whether that lead is larger than what another seed moves (the mean
    standard deviation of a variant over seeds); with one seed, that nothing measures the latter."""
    rows = table[table["model"] == model] if len(table) else table
    grid = rows["grid"].iloc[0] if len(rows) else "this grid"
    if rows["variant"].nunique() < 2:
        return f"{grid}, {model}: fewer than two variants have finished, nothing to rank"
    means = rows.groupby("variant")[metric].mean().sort_values(ascending=metric in LOWER_IS_BETTER)
    lead = abs(means.iloc[0] - means.iloc[1])
    line = (
        f"{grid}, {model} {metric}: best {means.index[0]!r} ({means.iloc[0]:.3f}), ahead of "
        f"{means.index[1]!r} by {lead:.3f}"
    )
    seeds = rows.groupby("variant")["seed"].nunique().min()
    if seeds < 2:
        return line + "; one seed per variant: nothing here measures what another seed would move"
    spread = rows.groupby("variant")[metric].std().mean()
    size = "larger" if lead > spread else "not larger"
    return (
        line + f"; another seed moves a variant by {spread:.3f} (std over {seeds} seeds): the lead is {size}"
    )


def first_validations(
    grid: str,
    variants: list[str],
    preset: str = "quick",
    seeds: list[int] | tuple[int, ...] = (0,),
    overrides: dict[str, Any] | None = None,
    out: str | Path | None = None,
    splits: bool = False,
    model: str = "sam",
) -> str:
    """``model``'s validation Dice at the first validation of each finished run of ``variants`` of ``grid``, one
    line each (read from the runs' ``history.jsonl``), or what to run when none of them has a history here."""
    from .runs import RunDir

    lines = []
    for r in plan(grid, preset, seeds, overrides, out, splits=splits, variants=variants):
        history = RunDir(r.run_dir).history()
        if history:
            first = history[0]
            lines.append(
                f"{r.label}, seed {r.seed}: {model}'s validation Dice {first['val_dice'][model]:.3f} "
                f"at step {first['step']}"
            )
    if not lines:
        return (
            f"no finished run of the {grid} grid's {' and '.join(map(repr, variants))} here: train them "
            f"(SCSAM_GRIDS={grid} in this notebook's parameters) and read this again"
        )
    return "\n".join(lines)
