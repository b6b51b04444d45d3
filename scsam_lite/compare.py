"""Is one run better than another on the same test images? A paired, per-image comparison.

Two mean Dice scores a few hundredths apart say little on their own: some test images are easy for every model and
some hard for all, so the per-image differences are what to look at. :func:`paired_comparison` reports the mean
difference with a bootstrap 95% interval over the test images (resampled in pairs), how many images each side wins,
and the Wilcoxon signed-rank p-value.

When the images come in groups (``SegData.groups``: the frames of one CVC-ClinicDB video, written to the per-item
files as a ``group`` column), frames of one group are near-duplicates, not independent evidence. The interval is
then a cluster bootstrap (whole groups resampled, with all their paired differences) and the Wilcoxon test is run
on the per-group mean differences; with fewer than :data:`FEW_GROUPS` groups both rest on very few units, and the
output says so. When the interval and the p-value disagree, the verdict says that in one line rather than picking
one.

What this does **not** measure is run-to-run noise: the same command with another seed or another label split
trains another model. The interval here only says how much the verdict depends on which test images were drawn;
a claim that method A beats method B also needs several seeds (``--seed``, ``data.split_seed``).

The inputs are the per-item files every run writes (``metrics_items.csv``, and ``scsam-lite evaluate``'s
``metrics_[<dataset>_]<split>_<checkpoint>[_prompts_from_RUN]_items.csv``, the dataset named when a run is scored
on another one).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from .errors import ConfigError, DataError
from .runs import read_item_groups, read_item_metrics

#: metrics where a smaller value is the better one (distances in px or mm)
LOWER_IS_BETTER = frozenset({"hd95", "asd"})
#: below this many groups a group-level interval or test is flagged as resting on very few units
FEW_GROUPS = 10
ALPHA = 0.05


@dataclass(frozen=True)
class PairedComparison:
    """A - B on the items both were scored on."""

    a: str
    b: str
    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean of the per-item differences a - b (= mean_a - mean_b)
    ci_low: float  # bootstrap 95% interval of ``diff`` over resampled items
    ci_high: float
    a_better: int  # items where A is better (by the metric's direction)
    b_better: int
    ties: int
    p_wilcoxon: float  # two-sided Wilcoxon signed-rank test of the differences (1.0 if all tie)
    n_groups: int = 0  # groups resampled (0: items resampled, no groups known)

    @property
    def unit(self) -> str:
        return "groups" if self.n_groups else "items"

    @property
    def resampling(self) -> str:
        """What the interval and the test were computed over."""
        if not self.n_groups:
            return f"bootstrap over the {self.n} items, Wilcoxon on the {self.n} per-item differences"
        return (
            f"cluster bootstrap over {self.n_groups} groups (each with all its items), Wilcoxon on the "
            f"{self.n_groups} per-group mean differences"
        )

    @property
    def warnings(self) -> list[str]:
        if self.n_groups and self.n_groups < FEW_GROUPS:
            return [
                f"only {self.n_groups} groups: the interval and the p-value rest on {self.n_groups} independent "
                "units, so read them as rough"
            ]
        return []

    @property
    def verdict(self) -> str:
        """In words, what the interval and the test allow one to say about these test images."""
        excludes = self.ci_low > 0 or self.ci_high < 0
        significant = self.p_wilcoxon < ALPHA
        if excludes and significant:
            better = self.a if (self.diff > 0) != (self.metric in LOWER_IS_BETTER) else self.b
            return f"{better} is better on these images (the 95% interval excludes 0)"
        if not excludes and not significant:
            return "no clear difference on these images (the 95% interval includes 0)"
        interval = "excludes" if excludes else "includes"
        side = "<" if significant else ">="
        return (
            f"no clear difference claimed: the 95% interval {interval} 0 but Wilcoxon p = {self.p_wilcoxon:.3g} "
            f"({side} {ALPHA}); the two disagree, so the evidence is borderline"
        )

    def __str__(self) -> str:
        groups = f" in {self.n_groups} groups" if self.n_groups else ""
        lines = [
            f"A = {self.a}\nB = {self.b}",
            f"{self.metric} on {self.n} items{groups}: A {self.mean_a:.4f}, B {self.mean_b:.4f}",
            f"  A - B = {self.diff:+.4f}  (95% bootstrap interval {self.ci_low:+.4f} to {self.ci_high:+.4f}), "
            f"Wilcoxon p = {self.p_wilcoxon:.3g}",
            f"  resampled: {self.resampling}",
            f"  better on {self.a_better} items: A, on {self.b_better}: B, ties {self.ties}",
            *(f"  warning: {w}" for w in self.warnings),
            f"  {self.verdict}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "unit": self.unit,
            "resampling": self.resampling,
            "warnings": self.warnings,
            "verdict": self.verdict,
        }


def _wilcoxon(d: np.ndarray) -> float:
    return 1.0 if not np.any(d) else float(stats.wilcoxon(d).pvalue)


def _group_bootstrap(
    d: np.ndarray, labels: list[str], n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap means of ``d`` over resampled groups (each drawn with all its items), and the group means."""
    names, inverse = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    sums = np.bincount(inverse, weights=d, minlength=len(names))
    counts = np.bincount(inverse, minlength=len(names)).astype(float)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    return sums[draws].sum(axis=1) / counts[draws].sum(axis=1), sums / counts


def _check_pairable(a: dict[str, float], b: dict[str, float], names: tuple[str, str], n_boot: int) -> None:
    """Refuse inputs that give no paired comparison: no bootstrap samples, no items, or different items on the
    two sides (an unpaired difference would mix which images were drawn with how good the models are)."""
    if n_boot < 1:
        raise ConfigError(
            f"{n_boot} bootstrap samples give no interval", "use --boot 1000 or more (default 10000)"
        )
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise DataError(
            f"the two were scored on different items ({len(only_a)} only in {names[0]}, e.g. {only_a[:2]}; "
            f"{len(only_b)} only in {names[1]}, e.g. {only_b[:2]})",
            "evaluate both runs on the same dataset, resolution and split (scsam-lite evaluate RUN --split test)",
        )
    if not a:
        raise DataError("no items to compare", "evaluate the runs on a split with at least one item")


def paired_comparison(
    a: dict[str, float],
    b: dict[str, float],
    *,
    metric: str = "dice",
    names: tuple[str, str] = ("A", "B"),
    n_boot: int = 10_000,
    seed: int = 0,
    groups: dict[str, str] | None = None,
) -> PairedComparison:
    """Compare per-item scores ``{item: value}`` of two models on the items they share.

    Both must have been scored on the same items (the same split of the same data); anything else is refused,
    since an unpaired difference would mix which images were drawn with how good the models are. ``groups``
    (``{item: group}``): resample whole groups and test per-group mean differences (see the module docstring).
    """
    _check_pairable(a, b, names, n_boot)
    items = sorted(a)
    va = np.array([a[k] for k in items], dtype=float)
    vb = np.array([b[k] for k in items], dtype=float)
    d = va - vb
    rng = np.random.default_rng(seed)
    if groups is not None:
        lacking = [k for k in items if k not in groups]
        if lacking:
            raise DataError(
                f"{len(lacking)} item(s) have no group, e.g. {lacking[:2]}",
                "give every item its group, or compare without groups",
            )
        labels = [groups[k] for k in items]
        boot, group_means = _group_bootstrap(d, labels, n_boot, rng)
        p, n_groups = _wilcoxon(group_means), len(group_means)
    else:
        boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
        p, n_groups = _wilcoxon(d), 0
    lo, hi = np.percentile(boot, [2.5, 97.5])
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    return PairedComparison(
        a=names[0],
        b=names[1],
        metric=metric,
        n=len(d),
        mean_a=float(va.mean()),
        mean_b=float(vb.mean()),
        diff=float(d.mean()),
        ci_low=float(lo),
        ci_high=float(hi),
        a_better=int((sign * d > 0).sum()),
        b_better=int((sign * d < 0).sum()),
        ties=int((d == 0).sum()),
        p_wilcoxon=p,
        n_groups=n_groups,
    )


def items_file(source: str | os.PathLike) -> Path:
    """The per-item metrics file of a run directory (its test metrics), or ``source`` itself if it is a file."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    for name in ("metrics_items.csv", "metrics_test_best_items.csv"):
        if (path / name).is_file():
            return path / name
    if path.is_dir():
        raise DataError(
            f"{path} has no per-image metrics (metrics_items.csv)",
            f"write them with `scsam-lite evaluate {path} --split test` (runs older than this file have none)",
        )
    raise DataError(f"{path} is neither a run directory nor a metrics file", "check the path")


def load_scores(source: str | os.PathLike, model: str | None, metric: str) -> tuple[dict[str, float], str]:
    """``{item: value}`` of one model from a run or items file, and a label for it (``run:model``).

    ``model`` None picks the only model, or ``sam`` where there are several (what the paper reports).
    """
    path = items_file(source)
    table = read_item_metrics(path)
    if model is None:
        model = next(iter(table)) if len(table) == 1 else "sam" if "sam" in table else None
    if model not in table:
        raise ConfigError(
            f"{path} has models {sorted(table)}" + (f", not {model!r}" if model else ""),
            "choose one with --model-a / --model-b",
        )
    rows = table[model]
    if any(metric not in r for r in rows.values()):
        raise ConfigError(f"{path} has no {metric!r} column", "use --metric dice, iou, hd95 or asd")
    label = path.parent.name
    if path.name != "metrics_items.csv":  # say which evaluation: "run[test_best_prompts_from_unet]"
        label += f"[{path.stem.removeprefix('metrics_').removesuffix('_items')}]"
    return {k: r[metric] for k, r in rows.items()}, f"{label}:{model}"


def scored_dataset(path: Path) -> str | None:
    """The dataset named in an ``evaluate --dataset`` file name (``metrics_cvc-clinicdb_test_best_items.csv``)."""
    from .data import DATASETS

    stem = path.name.removeprefix("metrics_")
    return next((n for n in DATASETS.names() if stem.startswith(n + "_")), None)


def _scoring(source: str | os.PathLike) -> dict | None:
    """What a run's per-item scores depend on besides the model (dataset, resolution): its config.json, and the
    dataset its file name gives when the run was scored on another one."""
    path = items_file(source)
    config = path.parent / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())["config"]["data"]
        dataset = scored_dataset(path) or data["dataset"]
        return {"data.dataset": dataset, "data.resolution": data["resolution"]}
    except (ValueError, KeyError, TypeError):
        return None


def pair_groups(a: str | os.PathLike, b: str | os.PathLike) -> dict[str, str] | None:
    """``{item: group}`` of the items of two per-item files (the groups belong to the data, so either file's
    serve; where both have them they must agree), or None when neither has groups."""
    ga, gb = read_item_groups(items_file(a)), read_item_groups(items_file(b))
    if ga is not None and gb is not None:
        clash = sorted(k for k in set(ga) & set(gb) if ga[k] != gb[k])
        if clash:
            raise DataError(
                f"the two files put item(s) in different groups, e.g. {clash[0]}: {ga[clash[0]]} vs {gb[clash[0]]}",
                "evaluate both runs on the same dataset (scsam-lite evaluate RUN --split test)",
            )
    if ga is None and gb is None:
        return None
    return {**(gb or {}), **(ga or {})}


def _check_same_scoring(a: str | os.PathLike, b: str | os.PathLike) -> None:
    """Two runs are only paired when their masks were scored on the same dataset at the same resolution (the item
    names match across resolutions, the pixels and distances do not)."""
    sa, sb = _scoring(a), _scoring(b)
    if sa is None or sb is None:
        return
    differ = {k: (sa[k], sb[k]) for k in sa if sa[k] != sb[k]}
    if differ:
        shown = ", ".join(f"{k}: {x} vs {y}" for k, (x, y) in differ.items())
        raise ConfigError(
            f"the two runs were scored on different data ({shown})",
            "compare runs of the same dataset and resolution (train or evaluate them alike)",
        )


def compare_runs(
    a: str | os.PathLike,
    b: str | os.PathLike,
    *,
    model_a: str | None = None,
    model_b: str | None = None,
    metric: str = "dice",
    n_boot: int = 10_000,
    seed: int = 0,
    use_groups: bool = True,
) -> PairedComparison:
    """:func:`paired_comparison` of two runs (or items files), e.g. SC-SAM's SAM against a mean-teacher U-Net.

    Where the files carry the items' groups (videos), whole groups are resampled; ``use_groups=False`` resamples
    single items anyway (treats the frames of one video as independent: intervals too narrow).
    """
    _check_same_scoring(a, b)
    sa, name_a = load_scores(a, model_a, metric)
    sb, name_b = load_scores(b, model_b, metric)
    if name_a == name_b:
        name_a, name_b = f"A ({name_a})", f"B ({name_b})"
    groups = pair_groups(a, b) if use_groups else None
    return paired_comparison(
        sa, sb, metric=metric, names=(name_a, name_b), n_boot=n_boot, seed=seed, groups=groups
    )
