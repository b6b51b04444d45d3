"""Fair controls: what co-training adds on each side, measured against like, and the regime study's rule.

SC-SAM's SAM needs a U-Net's prompts at test time, so beating a U-Net says only that a fine-tuned SAM refines a weak
U-Net's masks. The fair control for SAM is PEFT-SAM (fine-tuned on the same labeled images, never co-trained)
prompted by the same split's baseline U-Net (``scsam-lite evaluate PEFT_RUN --prompts-from UNET_RUN``); for the
U-Net it is the U-Net trained alone and the mean teacher, on the same split and schedule. Everything here is read
from committed run records (``scsam_lite/reference_runs``): nothing trains.

The rule (docs/cotraining-study.md, "The regime study and its rule"), fixed before the regime runs: a regime passes when on the
validation images SC-SAM's SAM beats PEFT-SAM prompted by the split's best U-Net baseline and SC-SAM's U-Net beats
the U-Net alone, each on most seeds and in the mean; a mean difference whose sign flips between the best and the
mean of the last three validations is selection noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .compare import PairedComparison, load_scores, paired_comparison
from .reference import ReferenceRun, best_validation, reference_runs
from .runs import read_json

#: the U-Net baselines every co-trained model is held against
BASELINES = ("unet", "mean-teacher")
#: how many of the last validations are averaged beside the best one (less selection noise)
LAST_K = 3


@dataclass(frozen=True)
class Regime:
    """A co-training regime and the runs that are its fair controls (reference-run name prefixes, ``-s<seed>``
    appended): the baselines must share its schedule, and its prompts where it changes them."""

    label: str
    sc_sam: str
    peft_sam: str = "lab/peft-sam"
    unet: str = "lab/unet"
    mean_teacher: str = "lab/mean-teacher"

    def baseline(self, name: str) -> str:
        return self.unet if name == "unet" else self.mean_teacher


#: the regimes of the study, in the order they were tried (cheapest first); ``lab`` is today's default
REGIMES = {
    "lab": Regime("today's lab default", "lab/sc-sam"),
    "unet-rampup": Regime(
        "U-Net's loss on SAM's masks ramped up (cotrain.unet_rampup=true)", "regime/unet-rampup"
    ),
    # LiteMedSAM was trained with boxes: a box from the U-Net's mask, for SC-SAM and its PEFT-SAM control alike
    "box": Regime(
        "a box from the U-Net's mask (prompts.kind=box)", "regime/box", peft_sam="regime/peft-sam-box"
    ),
    # both models from the split's trained baselines; the controls are those baselines continued alone as long
    "warm": Regime(
        "a warm start from the split's trained unet and peft-sam (specialist/generalist.init_from)",
        "regime/warm",
        peft_sam="regime/warm-peft-sam",
        unet="regime/warm-unet",
        mean_teacher="regime/warm-mean-teacher",
    ),
    # the warm start with the U-Net's loss on SAM's masks ramped up: the warm U-Net collapsed within 100 steps under
    # the full weight from step 0. The controls train alone, so the continued baselines of "warm" serve unchanged
    "warm-rampup": Regime(
        "a warm start with the U-Net's loss ramped up (init_from and cotrain.unet_rampup=true)",
        "regime/warm-rampup",
        peft_sam="regime/warm-peft-sam",
        unet="regime/warm-unet",
        mean_teacher="regime/warm-mean-teacher",
    ),
    # the warm start without the entropy term: under "warm-rampup" the U-Net still fell by step 50 while its weight
    # on SAM's masks was 0.10, and the entropy term (0.9, full weight from step 0) is the one loss the U-Net trained
    # alone does not have. The controls train alone, so they serve unchanged
    "warm-noentropy": Regime(
        "a warm start without the U-Net's entropy term (init_from and cotrain.entropy=false)",
        "regime/warm-noentropy",
        peft_sam="regime/warm-peft-sam",
        unet="regime/warm-unet",
        mean_teacher="regime/warm-mean-teacher",
    ),
    # both of the warm U-Net's co-training terms tamed: "warm-rampup" and "warm-noentropy" each stopped some of its
    # falls (the entropy on seeds 0-1, not the full-weight loss on SAM's masks on seed 2); together, same controls
    "warm-rampup-noentropy": Regime(
        "a warm start with the U-Net's loss ramped up and no entropy term (init_from, cotrain.unet_rampup=true and "
        "cotrain.entropy=false)",
        "regime/warm-rampup-noentropy",
        peft_sam="regime/warm-peft-sam",
        unet="regime/warm-unet",
        mean_teacher="regime/warm-mean-teacher",
    ),
}


@dataclass(frozen=True)
class Control:
    """One co-trained model against one control on one split (seed)."""

    side: str  # "sam" or "unet": which model of SC-SAM
    seed: int
    baseline: str  # the U-Net baseline involved: "unet" or "mean-teacher"
    control: str  # what SC-SAM's model is held against, in words
    val: float  # SC-SAM's model: best validation Dice
    val_control: float | None  # the control's validation Dice, chosen as it is tested (None: not scored)
    last: float  # SC-SAM's model: mean of the last LAST_K validations
    last_control: float | None  # the same for a control with a history (a U-Net), else its validation Dice
    test: PairedComparison | None  # paired over the test images (None: the control was not scored there)
    #: the per-image test Dice behind ``test`` (SC-SAM's, the control's), for the pooling over seeds
    test_scores: tuple[dict[str, float], dict[str, float]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def val_diff(self) -> float | None:
        return None if self.val_control is None else self.val - self.val_control

    @property
    def last_diff(self) -> float | None:
        return None if self.last_control is None else self.last - self.last_control


def last_validations(history: list[dict[str, Any]], model: str, k: int = LAST_K) -> float:
    """Mean validation Dice of ``model`` over the last ``k`` validations: a level a lucky check cannot set."""
    return float(np.mean([row["val_dice"][model] for row in history[-k:]]))


def _by_name(refs: list[ReferenceRun]) -> dict[str, ReferenceRun]:
    return {r.name: r for r in refs}


def _prompted_file(peft: ReferenceRun, split: str, source: str, suffix: str = ".json") -> Path:
    return peft.path / f"metrics_{split}_best_prompts_from_{source}{suffix}"


def sam_control(sc: ReferenceRun, peft: ReferenceRun, baseline: str, seed: int) -> Control:
    """SC-SAM's SAM against PEFT-SAM prompted by the split's ``baseline`` U-Net (``<baseline>-s<seed>``)."""
    source = f"{baseline}-s{seed}"
    hist = sc.history()
    val_file = _prompted_file(peft, "val", source)
    val_control = read_json(val_file)["sam"]["dice"] if val_file.is_file() else None
    items = _prompted_file(peft, "test", source, "_items.csv")
    test, scores = None, None
    if items.is_file():
        scores = (load_scores(sc.path, "sam", "dice")[0], load_scores(items, "sam", "dice")[0])
        test = paired_comparison(*scores, names=(f"{sc.name}:sam", f"{peft.name}<-{source}"), n_boot=2000)
    return Control(
        "sam",
        seed,
        baseline,
        f"PEFT-SAM prompted by `{source}`",
        best_validation(hist, "sam")[1],
        val_control,
        last_validations(hist, "sam"),
        val_control,
        test,
        scores,
    )


def unet_control(sc: ReferenceRun, base: ReferenceRun, baseline: str, seed: int) -> Control:
    """SC-SAM's U-Net against the split's ``baseline`` U-Net trained without SAM."""
    a_hist, b_hist = sc.history(), base.history()
    a, b = load_scores(sc.path, "unet", "dice")[0], load_scores(base.path, "unet", "dice")[0]
    return Control(
        "unet",
        seed,
        baseline,
        f"`{baseline}` alone",
        best_validation(a_hist, "unet")[1],
        best_validation(b_hist, "unet")[1],
        last_validations(a_hist, "unet"),
        last_validations(b_hist, "unet"),
        paired_comparison(a, b, names=(f"{sc.name}:unet", base.name), n_boot=2000),
        (a, b),
    )


def regime_controls(regime: Regime, root: str | Path | None = None) -> list[Control]:
    """Every fair control of ``regime`` on each seed that has its SC-SAM run, from the committed records."""
    runs = _by_name(reference_runs(root))
    out: list[Control] = []
    for seed in range(100):
        sc = runs.get(f"{regime.sc_sam}-s{seed}")
        if sc is None:
            continue
        peft = runs.get(f"{regime.peft_sam}-s{seed}")
        for baseline in BASELINES:
            if peft is not None:
                out.append(sam_control(sc, peft, baseline, seed))
            base = runs.get(f"{regime.baseline(baseline)}-s{seed}")
            if base is not None:
                out.append(unet_control(sc, base, baseline, seed))
    return out


def best_baseline(controls: list[Control], seed: int) -> str | None:
    """The split's best U-Net baseline: the one with the higher best validation Dice (chosen on validation)."""
    found = {c.baseline: c.val_control for c in controls if c.side == "unet" and c.seed == seed}
    if not found or any(v is None for v in found.values()):
        return None
    return max(found, key=lambda k: (found[k], k == "unet"))


@dataclass(frozen=True)
class SideVerdict:
    """One side of the rule over seeds: SC-SAM's model against its control, on validation."""

    side: str
    seeds: int
    won: int  # seeds where SC-SAM's model is ahead (best validation)
    mean_diff: float  # mean over seeds of the best-validation differences
    mean_last_diff: float  # the same with the mean of the last validations
    test_diff: float  # mean over seeds of the test differences (reported, never used)

    @property
    def noise(self) -> bool:
        """The best and the last validations disagree on the sign of the mean difference."""
        return (self.mean_diff > 0) != (self.mean_last_diff > 0)

    @property
    def passed(self) -> bool:
        return self.won * 2 > self.seeds and self.mean_diff > 0 and not self.noise


def _side_verdict(side: str, rows: list[Control]) -> SideVerdict | None:
    if not rows or any(c.val_diff is None or c.last_diff is None or c.test is None for c in rows):
        return None
    return SideVerdict(
        side,
        len(rows),
        sum(c.val_diff > 0 for c in rows),  # type: ignore[operator]
        float(np.mean([c.val_diff for c in rows])),
        float(np.mean([c.last_diff for c in rows])),
        float(np.mean([c.test.diff for c in rows])),  # type: ignore[union-attr]
    )


def rule_rows(controls: list[Control]) -> dict[str, list[Control]]:
    """The two comparisons the rule reads, per seed: SAM against PEFT-SAM prompted by the split's best U-Net
    baseline, and the U-Net against ``unet`` alone."""
    sam, unet = [], []
    for seed in sorted({c.seed for c in controls}):
        best = best_baseline(controls, seed)
        sam += [c for c in controls if c.side == "sam" and c.seed == seed and c.baseline == best]
        unet += [c for c in controls if c.side == "unet" and c.seed == seed and c.baseline == "unet"]
    return {"sam": sam, "unet": unet}


#: seeds the rule reads (0, 1, 2) before it decides
RULE_SEEDS = 3


@dataclass(frozen=True)
class Verdict:
    """The rule applied to one regime."""

    regime: str
    sam: SideVerdict | None
    unet: SideVerdict | None

    @property
    def passed(self) -> bool:
        return bool(self.complete and self.sam.passed and self.unet.passed)  # type: ignore[union-attr]

    @property
    def complete(self) -> bool:
        """Both sides scored on the rule's seeds."""
        return bool(self.sam and self.unet and min(self.sam.seeds, self.unet.seeds) >= RULE_SEEDS)

    @property
    def lost_already(self) -> bool:
        """A side has lost on so many seeds that the rule's majority is out of reach, whatever the others give."""
        need = RULE_SEEDS // 2 + 1
        return any(v is not None and v.seeds - v.won > RULE_SEEDS - need for v in (self.sam, self.unet))

    def __str__(self) -> str:
        if self.sam is None or self.unet is None:
            return "not decidable yet (a control is not scored on every seed)"
        if self.passed:
            return "co-training helps (both sides pass)"
        parts = []
        for v, name in ((self.sam, "SAM"), (self.unet, "U-Net")):
            state = "passes" if v.passed else "selection noise" if v.noise else "does not pass"
            parts.append(f"{name} {state} ({v.won}/{v.seeds} seeds, mean {v.mean_diff:+.3f})")
        if not self.complete and not self.lost_already:
            seeds = min(self.sam.seeds, self.unet.seeds)
            return f"open: {seeds} of {RULE_SEEDS} seeds so far (" + "; ".join(parts) + ")"
        return "no: " + "; ".join(parts)


def verdict(regime: str, root: str | Path | None = None) -> Verdict:
    """The regime study's rule for ``regime`` (a key of :data:`REGIMES`)."""
    rows = rule_rows(regime_controls(REGIMES[regime], root))
    return Verdict(regime, _side_verdict("sam", rows["sam"]), _side_verdict("unet", rows["unet"]))


def pooled_test(controls: list[Control]) -> PairedComparison | None:
    """The test difference over seeds: each test image's scores averaged over the seeds (the seeds share the test
    images), then a paired bootstrap over images. Seed-to-seed spread is in the per-seed rows."""
    if not controls or any(c.test_scores is None for c in controls):
        return None
    pooled = []
    for side in (0, 1):
        per_item: dict[str, list[float]] = {}
        for c in controls:
            for k, v in c.test_scores[side].items():  # type: ignore[index]
                per_item.setdefault(k, []).append(v)
        pooled.append({k: float(np.mean(v)) for k, v in per_item.items()})
    return paired_comparison(*pooled, names=("SC-SAM", "control"), n_boot=2000)


def _f(x: float | None, sign: bool = False) -> str:
    if x is None:
        return "not scored"
    return f"{x:+.3f}" if sign else f"{x:.3f}"


def controls_table(controls: list[Control]) -> str:
    """Markdown: every fair control per seed, validation beside test (the rule reads validation only)."""
    lines = [
        "| seed | SC-SAM's | against | validation: SC-SAM, best | control | difference | last 3: difference | "
        "test: SC-SAM | control | difference [95% CI] | images won / lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(controls, key=lambda c: (c.side != "sam", c.seed, c.baseline)):
        t = c.test
        test = (
            "not scored | | | |"
            if t is None
            else f"{t.mean_a:.3f} | {t.mean_b:.3f} | {t.diff:+.3f} [{t.ci_low:+.3f}, {t.ci_high:+.3f}] | "
            f"{t.a_better} / {t.b_better} |"
        )
        lines.append(
            f"| {c.seed} | {'SAM' if c.side == 'sam' else 'U-Net'} | {c.control} | {c.val:.3f} | "
            f"{_f(c.val_control)} | {_f(c.val_diff, True)} | {_f(c.last_diff, True)} | {test}"
        )
    return "\n".join(lines)


def over_seeds_table(controls: list[Control], root: str | Path | None = None) -> str:
    """Markdown: each kind of control over the seeds: validation wins and mean difference, and the test
    difference with a bootstrap over test images of the seed-averaged per-image differences."""
    lines = [
        "| SC-SAM's | against | seeds | validation: seeds won | mean difference | last 3: mean difference | "
        "test: mean difference [95% CI over images] |",
        "|---|---|---|---|---|---|---|",
    ]
    for side in ("sam", "unet"):
        for baseline in BASELINES:
            rows = [c for c in controls if c.side == side and c.baseline == baseline]
            if not rows:
                continue
            diffs = [c.val_diff for c in rows if c.val_diff is not None]
            lasts = [c.last_diff for c in rows if c.last_diff is not None]
            pooled = pooled_test(rows)
            test = (
                "not scored"
                if pooled is None
                else (f"{pooled.diff:+.3f} [{pooled.ci_low:+.3f}, {pooled.ci_high:+.3f}]")
            )
            control = "PEFT-SAM prompted by the split's" if side == "sam" else "the split's"
            lines.append(
                f"| {'SAM' if side == 'sam' else 'U-Net'} | {control} `{baseline}` | {len(rows)} | "
                f"{sum(d > 0 for d in diffs)} / {len(diffs)} | "
                f"{_f(float(np.mean(diffs)) if diffs else None, True)} | "
                f"{_f(float(np.mean(lasts)) if lasts else None, True)} | {test} |"
            )
    return "\n".join(lines)


def regime_table(root: str | Path | None = None) -> str:
    """Markdown: the rule's two comparisons for every regime with runs, and the verdict."""
    lines = [
        "| regime | seeds | SAM vs PEFT-SAM prompted by the best baseline: validation won, mean (last 3) | "
        "test mean | U-Net vs `unet`: validation won, mean (last 3) | test mean | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    found = False
    for key, regime in REGIMES.items():
        v = verdict(key, root)
        if v.sam is None and v.unet is None:
            continue
        found = True
        cells = []
        for side in (v.sam, v.unet):
            cells.append(
                "not scored | |"
                if side is None
                else f"{side.won} / {side.seeds}, {side.mean_diff:+.3f} ({side.mean_last_diff:+.3f}) | "
                f"{side.test_diff:+.3f} |"
            )
        seeds = v.sam.seeds if v.sam else v.unet.seeds if v.unet else 0
        lines.append(f"| {regime.label} | {seeds} | {cells[0]} {cells[1]} {v} |")
    return "\n".join(lines) if found else ""


def controls_frame(regime: str = "lab", root: str | Path | None = None):
    """The fair controls of ``regime`` as a DataFrame, one row per seed and control (for notebook 04)."""
    import pandas as pd

    rows = []
    for c in regime_controls(REGIMES[regime], root):
        t = c.test
        rows.append(
            {
                "seed": c.seed,
                "SC-SAM's": "SAM" if c.side == "sam" else "U-Net",
                "against": c.control,
                "val SC-SAM (best)": c.val,
                "val control": c.val_control,
                "val difference": c.val_diff,
                "last-3 difference": c.last_diff,
                "test SC-SAM": None if t is None else t.mean_a,
                "test control": None if t is None else t.mean_b,
                "test difference": None if t is None else t.diff,
                "95% CI low": None if t is None else t.ci_low,
                "95% CI high": None if t is None else t.ci_high,
            }
        )
    return pd.DataFrame(rows)


def in_words(regime: str = "lab", root: str | Path | None = None) -> str:
    """What the fair controls of ``regime`` say, in sentences whose numbers are read from the records."""
    found = regime_controls(REGIMES[regime], root)
    if not found:
        return f"no committed runs of the {regime!r} regime"
    lines = []
    runs = _by_name(reference_runs(root))
    seeds = sorted({c.seed for c in found})
    own = []
    for seed in seeds:
        sc = runs[f"{REGIMES[regime].sc_sam}-s{seed}"]
        own.append(sc.metrics["sam"]["dice"] - sc.metrics["unet"]["dice"])
    lines.append(
        f"SC-SAM's SAM against its own U-Net (test, seeds {', '.join(map(str, seeds))}): "
        + ", ".join(f"{d:+.3f}" for d in own)
        + (
            ": SAM improves on the masks it is prompted from on every seed."
            if all(d > 0 for d in own)
            else ": not on every seed."
        )
    )
    for side, name in (("sam", "SAM"), ("unet", "U-Net")):
        for baseline in BASELINES:
            rows = [c for c in found if c.side == side and c.baseline == baseline and c.test is not None]
            pooled = pooled_test(rows)
            if pooled is None:
                continue
            inside = pooled.ci_low <= 0 <= pooled.ci_high
            lines.append(
                f"SC-SAM's {name} against {rows[0].control.replace(f'-s{rows[0].seed}', '')} on the same split "
                f"(test, per seed {', '.join(f'{c.test.diff:+.3f}' for c in rows)}; over seeds "
                f"{pooled.diff:+.3f}, 95% interval {pooled.ci_low:+.3f} to {pooled.ci_high:+.3f}): "
                + ("no measurable difference." if inside else "a difference beyond the images' noise.")
            )
    lines.append(f"The rule on validation: {verdict(regime, root)}.")
    return "\n".join(lines)


#: the earlier default decisions of the ``fidelity`` grid (README), as (question, option run prefix, against prefix)
DECISIONS = (
    ("loss scale 1.0 against 0.5", "fidelity/entropy-unlabeled", "fidelity/loss-x0.5"),
    ("SAM's two passes against one", "fidelity/SAM-two-pass", "fidelity/entropy-unlabeled"),
    ("entropy over the batch against the unlabeled images", "lab/sc-sam", "fidelity/entropy-unlabeled"),
    (
        "strong view of the unlabeled images against weak",
        "fidelity/unlabeled-strong",
        "fidelity/entropy-unlabeled",
    ),
)


def decisions_table(root: str | Path | None = None) -> str:
    """Markdown: each earlier decision's validation differences per seed, from the best check and from the mean
    of the last three; a mean whose sign flips between the two is selection noise, and one smaller than its
    standard error over the seeds is noise too."""
    runs = _by_name(reference_runs(root))
    lines = [
        "| option against the other | model | seeds | best check: per seed | mean | last 3: per seed | mean | "
        "reading |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for question, a, b in DECISIONS:
        seeds = [s for s in range(10) if f"{a}-s{s}" in runs and f"{b}-s{s}" in runs]
        if not seeds:
            continue
        for model in ("sam", "unet"):
            best, last = [], []
            for s in seeds:
                ha, hb = runs[f"{a}-s{s}"].history(), runs[f"{b}-s{s}"].history()
                best.append(best_validation(ha, model)[1] - best_validation(hb, model)[1])
                last.append(last_validations(ha, model) - last_validations(hb, model))
            mb, ml = float(np.mean(best)), float(np.mean(last))
            agree = (mb > 0) == (ml > 0)
            won = sum(d > 0 for d in best)
            se = float(np.std(best, ddof=1) / np.sqrt(len(best))) if len(best) > 1 else float("inf")
            if not agree:
                reading = "selection noise (the sign flips)"
            elif abs(mb) < se:
                reading = "noise (the mean is within one standard error over seeds)"
            elif won * 2 > len(seeds) and mb > 0 or won * 2 < len(seeds) and mb < 0:
                reading = "stands (same sign, most seeds)"
            else:
                reading = "same sign, but not on most seeds"
            lines.append(
                f"| {question} | {'SAM' if model == 'sam' else 'U-Net'} | {len(seeds)} | "
                f"{', '.join(f'{d:+.3f}' for d in best)} | {mb:+.3f} | {', '.join(f'{d:+.3f}' for d in last)} | "
                f"{ml:+.3f} | {reading} |"
            )
    return "\n".join(lines)
