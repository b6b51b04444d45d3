"""The paper's ablations read the way the co-training study reads a regime: decided on validation, test reported.

A grid's table (:func:`scsam_lite.sweeps.sweep_table`, or :func:`lab_table` from the committed records) holds, per
variant, seed and evaluated model, the best validation Dice, the mean of the last three validations and the test
metrics. :func:`compare` holds each variant against the grid's default (the variant that changes nothing in the
profile), paired by seed, since seed ``s`` also draws labeled split ``s``. The rule, written before the lab grids
ran (docs/ablations.md):

- a variant is **ahead** of the default for a model when it has the higher best validation Dice on most seeds,
  the mean difference of the best checks is positive and the mean difference of the last three checks agrees;
- **behind** is the same with every sign turned;
- anything else is **noise**: the best and the last checks disagree, or the seeds do;
- with fewer than :data:`~scsam_lite.controls.RULE_SEEDS` seeds the reading stays **open**;
- an ahead or behind resting on a mean best-check difference under :data:`NARROW` is marked *narrow*: seeds 3-4
  would have to confirm it before anything rests on it (the co-training study's clause for a pass).

Test differences are reported beside each verdict and never used to reach it. Nothing here trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .controls import REGIMES, RULE_SEEDS, regime_controls
from .reference import ReferenceRun, reference_runs
from .sweeps import GRIDS, TABLE_COLUMNS, PlannedRun, default_variant, folder_name, plan, table_rows

#: the lab course's ablations (issue 30) and the variants each has committed records for, by folder name
LAB_VARIANTS: dict[str, tuple[str, ...]] = {
    "rampup": ("off", "T-1of4", "T-1of2", "T-1"),
    "prompts": ("1-plus-0", "3-plus-3", "5-plus-5", "10-plus-10"),
    "prompt-type": ("points", "box"),
    "backbone": ("unet", "unet-plus-plus", "resunet", "swin"),
}

#: the co-training study's margin (docs/cotraining-study.md): a verdict whose mean best-check difference is smaller
#: keeps its direction but is marked narrow, since three seeds of six checks cannot separate it from selection noise
NARROW = 0.02

#: what the SC-SAM paper reports for the same question (PROMISE12, 5% labels; ``scsam_lite.paper``), in words
PAPER_DIRECTIONS: dict[str, str] = {
    "rampup": "The paper: without the ramp-up Dice falls from 83.64 to 36.37 (T = 1/4 of its 40,000 steps)",
    "prompts": "The paper studies the prompt count without a number in its tables: nothing to compare with",
    "prompt-type": "The paper prompts with points only",
    "backbone": "The paper: UNet 83.64 > UNet++ 80.14 > ResUNet++ 78.20 > SwinUNet 70.27",
}

#: the paper's directions as verdicts against our default: its ramp-up (T = 1/4) far ahead of none, and its U-Net
#: ahead of every other specialist. SC-SAM's final prediction is SAM's, so these are read for SAM
PAPER_EXPECTS: dict[str, dict[str, str]] = {
    "rampup": {"off": "behind"},
    "backbone": {"unet++": "behind", "resunet": "behind", "swin": "behind"},
}


def course_grids(profile: str) -> list[str]:
    """Notebook 05's grids when none are named: ``quick`` the ramp-up alone (minutes), ``lab`` the grids with
    committed records (nothing trains), the GPU profiles all of them."""
    return {"quick": ["rampup"], "lab": [*LAB_VARIANTS, "fidelity"]}.get(profile, GRIDS.names())


@dataclass(frozen=True)
class VariantReading:
    """One variant against the grid's default for one model, over the seeds both have."""

    grid: str
    model: str
    variant: str
    default: str
    seeds: int
    won: int  # seeds where the variant's best validation Dice is higher
    lost: int  # seeds where it is lower
    mean_diff: float  # mean over seeds of the best-validation differences (variant - default)
    mean_last_diff: float  # the same with the mean of the last three validations
    test_diff: float  # mean over seeds of the test Dice differences (reported, never used)

    @property
    def verdict(self) -> str:
        if self.seeds < RULE_SEEDS:
            return f"open ({self.seeds} of {RULE_SEEDS} seeds)"
        if self.won * 2 > self.seeds and self.mean_diff > 0 and self.mean_last_diff > 0:
            return "ahead"
        if self.lost * 2 > self.seeds and self.mean_diff < 0 and self.mean_last_diff < 0:
            return "behind"
        return "noise"

    @property
    def narrow(self) -> bool:
        """An ahead or behind by a mean best-check difference under :data:`NARROW`: seeds 3-4 to confirm."""
        return self.verdict in ("ahead", "behind") and abs(self.mean_diff) < NARROW

    @property
    def verdict_note(self) -> str:
        """The verdict as a reader should take it: a narrow one says so."""
        return (
            f"{self.verdict}, narrow (under {NARROW}: seeds 3-4 to confirm)" if self.narrow else self.verdict
        )


def compare(table: Any, model: str, default: str) -> list[VariantReading]:
    """Every other variant of ``table`` (one grid) against ``default`` for ``model``, paired by seed."""
    rows = table[(table["model"] == model) & table["val_best"].notna()] if len(table) else table
    if not len(rows) or default not in set(rows["variant"]):
        return []
    grid = str(rows["grid"].iloc[0])
    base = rows[rows["variant"] == default].set_index("seed")
    out = []
    for variant in rows.sort_values("order")["variant"].unique():
        if variant == default:
            continue
        mine = rows[rows["variant"] == variant].set_index("seed")
        seeds = sorted(set(mine.index) & set(base.index))
        if not seeds:
            continue
        d = mine.loc[seeds, "val_best"] - base.loc[seeds, "val_best"]
        last = mine.loc[seeds, "val_last"] - base.loc[seeds, "val_last"]
        test = mine.loc[seeds, "dice"] - base.loc[seeds, "dice"]
        out.append(
            VariantReading(
                grid, model, variant, default, len(seeds), int((d > 0).sum()), int((d < 0).sum()),
                float(d.mean()), float(last.mean()), float(test.mean()),
            )
        )  # fmt: skip
    return out


def reading(table: Any, model: str, default: str) -> str:
    """``model``'s reading of one grid in sentences, one per variant, numbers from ``table``."""
    found = compare(table, model, default)
    grid = str(table["grid"].iloc[0]) if len(table) else "this grid"
    if not found:
        return f"{grid}, {model}: no variant beside the default {default!r} has finished, nothing to compare"
    lines = [
        f"{grid}, {model}, each variant against the default {default!r} (validation decides, test reported):"
    ]
    for r in found:
        lines.append(
            f"  {r.variant}: {r.verdict_note}; best validation ahead on {r.won} of {r.seeds} seeds, mean "
            f"{r.mean_diff:+.3f} (last three {r.mean_last_diff:+.3f}); test {r.test_diff:+.3f}"
        )
    return "\n".join(lines)


def paper_check(table: Any, default: str, model: str = "sam") -> str:
    """Whether the paper's direction (:data:`PAPER_EXPECTS`) reproduces in ``table``: per variant the paper ranks,
    its expected verdict against the default beside the one measured here."""
    grid = str(table["grid"].iloc[0]) if len(table) else ""
    expects = PAPER_EXPECTS.get(grid)
    if not expects:
        return f"{grid}: the paper ranks none of these variants; nothing to reproduce"
    found = {r.variant: r for r in compare(table, model, default)}
    lines = []
    for variant, want in expects.items():
        r = found.get(variant)
        got = r.verdict_note if r else "-"
        lines.append(
            f"{grid}: the paper has {variant!r} {want} {default!r}; here ({model}) {got}: {_state(r, want)}"
        )
    return "\n".join(lines)


def _state(r: VariantReading | None, want: str) -> str:
    """Whether one measured reading reproduces the paper's expected verdict ``want``."""
    if r is None:
        return "no record here"
    if r.verdict == want:
        return "reproduces, narrowly" if r.narrow else "reproduces"
    return "undecided here" if r.verdict.startswith("open") else "does not reproduce at this scale"


def readings_frame(tables: dict[str, Any], defaults: dict[str, str]):
    """Every grid's readings for SAM and the U-Net as one DataFrame (notebook 05, the results page)."""
    import pandas as pd

    rows = []
    for name, table in tables.items():
        for model in ("sam", "unet"):
            for r in compare(table, model, defaults[name]):
                rows.append(
                    {
                        "grid": r.grid,
                        "model": r.model,
                        "variant": r.variant,
                        "against": r.default,
                        "seeds": r.seeds,
                        "val won": f"{r.won} / {r.seeds}",
                        "val diff (best)": r.mean_diff,
                        "val diff (last 3)": r.mean_last_diff,
                        "test diff": r.test_diff,
                        "verdict": r.verdict_note,
                    }
                )
    return pd.DataFrame(rows)


def _lab_records(
    grid: str, seeds: tuple[int, ...], root: str | Path | None
) -> list[tuple[PlannedRun, ReferenceRun]]:
    """Each planned lab run of :data:`LAB_VARIANTS`' variants of ``grid`` with its committed record (same config
    hash, as a sweep finds it); the records are read once, not once per planned run."""
    by_hash = {ref.config_hash: ref for ref in reference_runs(root)}
    variants = list(LAB_VARIANTS.get(grid, [folder_name(v.label) for v in GRIDS.get(grid).variants]))
    planned = plan(grid, "lab", seeds, None, Path("."), splits=True, variants=variants)
    return [(r, by_hash[r.config_hash]) for r in planned if r.config_hash in by_hash]


def lab_table(grid: str, seeds: tuple[int, ...] = (0, 1, 2), root: str | Path | None = None):
    """``grid``'s table on the ``lab`` profile from the committed records; a variant with no record has no rows."""
    import pandas as pd

    rows = [
        row for r, ref in _lab_records(grid, seeds, root) for row in table_rows(r, ref.metrics, ref.history())
    ]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def lab_records(grid: str, seed: int = 0, root: str | Path | None = None) -> dict[str, Path]:
    """``{"<grid> <variant>": record folder}`` of ``grid``'s committed lab runs of one seed: the curves notebook
    05's try-it widget draws a live run over."""
    return {f"{grid} {r.label}": ref.path for r, ref in _lab_records(grid, (seed,), root)}


def lab_defaults() -> dict[str, str]:
    """Each lab ablation's default variant (today's lab config)."""
    return {name: default_variant(name, "lab") or "" for name in LAB_VARIANTS}


def baseline_lines(
    seeds: tuple[int, ...] = (0, 1, 2), root: str | Path | None = None
) -> dict[str, dict[str, float]]:
    """The co-training study's fair controls on ``lab`` as test Dice means over ``seeds``, per SC-SAM model: the
    lines an ablation's plot is read against (a variant below them does worse than no co-training at all)."""
    found: dict[str, dict[str, list[float]]] = {"sam": {}, "unet": {}}
    for c in regime_controls(REGIMES["lab"], root):
        if c.seed in seeds and c.test is not None:
            name = f"PEFT-SAM prompted by {c.baseline}" if c.side == "sam" else f"{c.baseline} alone"
            found[c.side].setdefault(name, []).append(c.test.mean_b)
    return {side: {k: float(np.mean(v)) for k, v in d.items()} for side, d in found.items()}


def _cell(values: Any) -> str:
    v = [x for x in values if x == x]  # NaN-free
    if not v:
        return ""
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def grid_markdown(grid: str, root: str | Path | None = None) -> str:
    """One lab grid for the results page: each variant's validation and test Dice over seeds, then the readings
    against the default; empty when no variant of the grid has a record."""
    t = lab_table(grid, root=root)
    if not len(t):
        return ""
    lines = [
        "| variant | seeds | SAM: best validation | SAM: test | U-Net: best validation | U-Net: test |",
        "|---|---|---|---|---|---|",
    ]
    for variant in t.sort_values("order")["variant"].unique():
        rows = t[t["variant"] == variant]
        sam, unet = rows[rows["model"] == "sam"], rows[rows["model"] == "unet"]
        lines.append(
            f"| {variant} | {rows['seed'].nunique()} | {_cell(sam['val_best'])} | {_cell(sam['dice'])} | "
            f"{_cell(unet['val_best'])} | {_cell(unet['dice'])} |"
        )
    readings = readings_frame({grid: t}, {grid: default_variant(grid, "lab") or ""})
    if len(readings):
        lines += [
            "",
            "| model | variant | against | validation won | mean difference, best (last 3) | test difference | "
            "verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in readings.iterrows():
            lines.append(
                f"| {'SAM' if r['model'] == 'sam' else 'U-Net'} | {r['variant']} | {r['against']} | {r['val won']} "
                f"| {r['val diff (best)']:+.3f} ({r['val diff (last 3)']:+.3f}) | {r['test diff']:+.3f} | "
                f"{r['verdict']} |"
            )
    return "\n".join(lines)


def results_section(root: str | Path | None = None) -> str:
    """The results page's "Ablations on lab" section (docs/ablations.md has the rule), or empty without records."""
    parts = []
    for grid in LAB_VARIANTS:
        table = grid_markdown(grid, root)
        if table:
            parts.append(
                f"### `{grid}`: {GRIDS.get(grid).description}\n\n{PAPER_DIRECTIONS[grid]}.\n\n{table}\n"
            )
    if not parts:
        return ""
    lines = baseline_lines(root=root)
    ref = "; ".join(f"{k} {v:.3f}" for side in ("sam", "unet") for k, v in lines[side].items())
    return (
        "## Ablations on lab (`scsam-lite sweep GRID --preset lab --seeds S --splits`)\n\n"
        "Each grid changes one setting of today's `lab` SC-SAM (its default row is `lab/sc-sam-s*`, found by "
        "config hash); mean ± sample standard deviation over the seeds that have a record. Each variant is read "
        "against the default, paired by seed, by the rule of docs/ablations.md: validation decides, test is "
        f"reported. The fair controls without co-training (test, mean over seeds 0-2): {ref}.\n\n"
        + "\n".join(parts)
    )
