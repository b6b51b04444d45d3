"""The ablations side by side: pick a sweep, a test metric and an evaluated model, see the variants compared.

A sweep (:func:`~scsam_lite.sweeps.sweep`) trains one run per (variant, seed) of a grid and
:func:`~scsam_lite.sweeps.sweep_table` reads them back as one row per (variant, seed, evaluated model). SC-SAM
evaluates three models: ``sam`` (the generalist prompted by the U-Net), ``unet`` (the specialist) and ``agreement``
(the pixels both predict). A variant can help one and hurt another, and Dice can rise while the boundary distances
(HD95, ASD) get worse, which is why :class:`AblationExplorer` lets a student switch between them instead of
showing one number per variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure

from .. import viz
from ..errors import ConfigError
from ..registry import unknown_name
from ..sweeps import GRIDS
from .explorer import Explorer

#: Evaluated models in the order the dropdown offers them (others a table has come after these).
MODEL_ORDER = ("sam", "unet", "agreement")
_FIX = "build tables with scsam_lite.sweeps.sweep_table(grid, ...) after sweep(grid, ...) has run"


def _as_tables(tables: Any) -> dict[str, Any]:
    """``{ablation: table}`` from a dict of sweep tables or one table holding several grids; empty ones dropped."""
    import pandas as pd

    if isinstance(tables, pd.DataFrame):
        if "grid" not in tables.columns:
            raise ConfigError("the table has no 'grid' column", _FIX)
        tables = {str(g): t for g, t in tables.groupby("grid", sort=False)}
    elif not isinstance(tables, Mapping):
        raise ConfigError(
            f"AblationExplorer takes a dict of sweep tables or one table, not {type(tables).__name__}", _FIX
        )
    out = {}
    for name, table in tables.items():
        if not isinstance(table, pd.DataFrame):
            raise ConfigError(
                f"the table of {name!r} is a {type(table).__name__}, not a pandas DataFrame", _FIX
            )
        if table.empty:
            continue
        missing = [c for c in ("grid", "variant", "order", "seed", "model") if c not in table.columns]
        if missing:
            raise ConfigError(f"the table of {name!r} lacks the columns {', '.join(missing)}", _FIX)
        grids = list(dict.fromkeys(table["grid"]))
        if len(grids) > 1:
            raise ConfigError(
                f"the table of {name!r} mixes the grids {', '.join(map(str, grids))}",
                "pass one table per grid, or the combined table alone (it is split by its 'grid' column)",
            )
        out[str(name)] = table
    if not out:
        raise ConfigError(
            "no finished sweep runs to show: every table is empty", "run the sweeps first; " + _FIX
        )
    return out


def models_of(table: Any) -> list[str]:
    """The evaluated models of a sweep table, ``sam``, ``unet``, ``agreement`` first."""
    present = list(dict.fromkeys(str(m) for m in table["model"]))
    return [m for m in MODEL_ORDER if m in present] + [m for m in present if m not in MODEL_ORDER]


class AblationExplorer(Explorer):
    """Dropdowns for the ablation (sweep grid), the test metric and the evaluated model; shows
    :func:`~scsam_lite.viz.plot_ablation` of that choice, with the grid's question above it.

    Args:
        tables: ``{grid: sweep_table(grid, ...)}``, or one table with several grids (split by its ``grid``
            column). Grids without finished runs are left out of the dropdown.
        metric: the metric shown first (``dice``, ``iou``, ``hd95`` or ``asd``).
        model: the evaluated model shown first, if the first table has it.
    """

    def __init__(self, tables: Mapping[str, Any] | Any, *, metric: str = "dice", model: str = "sam") -> None:
        self.tables = _as_tables(tables)
        if metric not in viz.ABLATION_METRICS:
            raise unknown_name("metric", metric, list(viz.ABLATION_METRICS))
        first = next(iter(self.tables))
        models = models_of(self.tables[first])
        controls = {
            "ablation": W.Dropdown(options=list(self.tables), value=first, description="ablation"),
            "metric": W.Dropdown(
                options=[(label.split(" (")[0], key) for key, (label, _) in viz.ABLATION_METRICS.items()],
                value=metric,
                description="metric",
            ),
            "model": W.Dropdown(
                options=models, value=model if model in models else models[0], description="model"
            ),
        }
        # observed before the wiring, so the model list is right before the re-render
        controls["ablation"].observe(self._on_ablation, names="value")
        self._model_dropdown = controls["model"]
        super().__init__(controls)

    def _on_ablation(self, change: dict[str, Any]) -> None:
        """Offer the models the newly chosen table has, keeping the current one when it is among them."""
        dropdown = self._model_dropdown
        models = models_of(self.tables[change["new"]])
        if list(dropdown.options) != models:
            keep = dropdown.value if dropdown.value in models else models[0]
            dropdown.options = models
            dropdown.value = keep

    def render(self, ablation: str, metric: str, model: str) -> Figure:
        table = self.tables[ablation]
        models = models_of(table)
        fig = viz.plot_ablation(table, metric, model if model in models else models[0])
        grid = str(table["grid"].iloc[0])
        if grid in GRIDS:
            fig.suptitle(GRIDS.get(grid).description, fontsize=9)
            fig.tight_layout()
        return fig
