"""Is one run better than another on the same test images? A paired, per-image comparison.

Two mean Dice scores a few hundredths apart say little on their own: some test images are easy for every model and
some hard for all, so the per-image differences are what to look at. :func:`paired_comparison` reports the mean
difference with a bootstrap 95% interval over the test images (resampled in pairs), how many images each side wins,
and the Wilcoxon signed-rank p-value.

What this does **not** measure is run-to-run noise: the same command with another seed or another label split
trains another model. The interval here only says how much the verdict depends on which test images were drawn;
a claim that method A beats method B also needs several seeds (``--seed``, ``data.split_seed``).

The inputs are the per-item files every run writes (``metrics_items.csv``, and ``scsam-lite evaluate``'s
``metrics_<split>_<checkpoint>[_prompts_from_RUN]_items.csv``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from .errors import ConfigError, DataError
from .runs import read_item_metrics

#: metrics where a smaller value is the better one (distances in px or mm)
LOWER_IS_BETTER = frozenset({"hd95", "asd"})


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
    p_wilcoxon: float  # two-sided Wilcoxon signed-rank test of the per-item differences (1.0 if all tie)

    @property
    def verdict(self) -> str:
        """In words, what the interval allows one to say about these test images."""
        if self.ci_low > 0 or self.ci_high < 0:
            better = self.a if (self.diff > 0) != (self.metric in LOWER_IS_BETTER) else self.b
            return f"{better} is better on these images (the 95% interval excludes 0)"
        return "no clear difference on these images (the 95% interval includes 0)"

    def __str__(self) -> str:
        return (
            f"A = {self.a}\nB = {self.b}\n"
            f"{self.metric} on {self.n} items: A {self.mean_a:.4f}, B {self.mean_b:.4f}\n"
            f"  A - B = {self.diff:+.4f}  (95% bootstrap interval {self.ci_low:+.4f} to {self.ci_high:+.4f}), "
            f"Wilcoxon p = {self.p_wilcoxon:.3g}\n"
            f"  better on {self.a_better} items: A, on {self.b_better}: B, ties {self.ties}\n"
            f"  {self.verdict}"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def paired_comparison(
    a: dict[str, float],
    b: dict[str, float],
    *,
    metric: str = "dice",
    names: tuple[str, str] = ("A", "B"),
    n_boot: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compare per-item scores ``{item: value}`` of two models on the items they share.

    Both must have been scored on the same items (the same split of the same data); anything else is refused,
    since an unpaired difference would mix which images were drawn with how good the models are.
    """
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
    items = sorted(a)
    va = np.array([a[k] for k in items], dtype=float)
    vb = np.array([b[k] for k in items], dtype=float)
    d = va - vb
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    p = 1.0 if not np.any(d) else float(stats.wilcoxon(d).pvalue)
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


def _scoring(source: str | os.PathLike) -> dict | None:
    """What a run's per-item scores depend on besides the model (dataset, resolution), from its config.json."""
    path = items_file(source)
    config = path.parent / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())["config"]["data"]
        return {"data.dataset": data["dataset"], "data.resolution": data["resolution"]}
    except (ValueError, KeyError, TypeError):
        return None


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
) -> PairedComparison:
    """:func:`paired_comparison` of two runs (or items files), e.g. SC-SAM's SAM against a mean-teacher U-Net."""
    _check_same_scoring(a, b)
    sa, name_a = load_scores(a, model_a, metric)
    sb, name_b = load_scores(b, model_b, metric)
    if name_a == name_b:
        name_a, name_b = f"A ({name_a})", f"B ({name_b})"
    return paired_comparison(sa, sb, metric=metric, names=(name_a, name_b), n_boot=n_boot, seed=seed)
