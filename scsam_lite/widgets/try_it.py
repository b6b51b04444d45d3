"""Try it: sliders that set a short co-training run and a button that trains it, drawn over committed curves.

Every other widget of the course replays records or draws formulas; this one changes a training parameter. The
sliders set the ramp-up length (as a share of the run), the point counts, the prompt kind and the specialist; the
button trains a short ``sc-sam`` run from those settings on top of the notebook's config (reused when the same
settings were trained before: runs are named by their config hash) and draws its validation curve over the
committed runs' curves. On the ``lab`` profile with stored embeddings a 60-step run takes a few minutes on a
2-core CPU. Headless (nbval, papermill) it shows one static picture: the committed curves and w(t) of the current
settings, without training anything.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .. import config as C
from ..errors import ScsamError
from ..rampup import sigmoid_rampup
from ..runs import RunDir
from ..specialist import SPECIALISTS
from .explorer import Explorer

#: ramp-up lengths offered, as a share of the run (the ``rampup`` grid's)
RAMPUPS = (("off", 0.0), ("1/4", 0.25), ("1/2", 0.5), ("whole run", 1.0))


def try_config(
    base: C.Config, *, rampup: float, n_pos: int, n_neg: int, kind: str, backbone: str, steps: int
):
    """``base`` with the widget's settings: a short run of ``steps`` validated three times, no probe snapshots."""
    over = {
        "train.iterations": steps,
        "train.val_every": max(1, steps // 3),
        "cotrain.rampup_length": int(round(rampup * steps)),
        "prompts.n_pos": n_pos,
        "prompts.n_neg": n_neg,
        "prompts.kind": kind,
        "specialist.name": backbone,
        "cotrain.probe_images": 0,
    }
    cfg = C.config_from_dict(base.to_dict())
    for key, value in over.items():
        C.set_value(cfg, key, value)
    C.validate(cfg)
    return cfg


def _curve(run_dir: str | Path, model: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in RunDir(run_dir).history() if model in r.get("val_dice", {})]
    return np.array([r["step"] for r in rows]), np.array([r["val_dice"][model] for r in rows])


class TryItTrainer(Explorer):
    """Sliders for a short ``sc-sam`` run and a *train* button.

    Args:
        base: the notebook's ``sc-sam`` config (profile, dataset, labels, seed).
        runs: where the live runs go (one folder per config hash: trained once, reused after).
        committed: ``{label: run_dir}`` of committed runs whose curves are drawn in grey for comparison.
        steps: the live run's length (60 on ``lab``: docs/records/try-it-lab.json has what it cost).
    """

    def __init__(
        self,
        base: C.Config,
        runs: str | Path,
        committed: Mapping[str, str | Path] | None = None,
        *,
        steps: int = 60,
    ) -> None:
        self.base, self.runs = base, Path(runs)
        self.committed = dict(committed or {})
        self.trained: list[tuple[str, Path, float]] = []  # (label, run folder, wall seconds)
        self.message = ""
        controls = {
            "rampup": W.SelectionSlider(options=list(RAMPUPS), value=0.5, description="ramp-up T"),
            "n_pos": W.IntSlider(value=base.prompts.n_pos, min=0, max=10, description="+ points"),
            "n_neg": W.IntSlider(value=base.prompts.n_neg, min=0, max=10, description="- points"),
            "kind": W.Dropdown(
                options=["points", "box", "points+box"], value=base.prompts.kind, description="prompt"
            ),
            "backbone": W.Dropdown(
                options=SPECIALISTS.names(), value=base.specialist.name, description="U-Net"
            ),
            "steps": W.IntSlider(value=steps, min=10, max=300, step=10, description="steps"),
        }
        self.button = W.Button(description="train this run", button_style="primary")
        self.button.on_click(lambda _: self.train_now())
        super().__init__(controls)

    def layout(self) -> W.Widget:
        box = super().layout()
        return W.VBox([box.children[0], self.button, box.children[1]])

    def settings_label(self, values: Mapping[str, Any] | None = None) -> str:
        v = dict(values or self.values)
        name = next(k for k, f in RAMPUPS if f == v["rampup"])
        return f"T {name}, {v['n_pos']}+{v['n_neg']} {v['kind']}, {v['backbone']}, {v['steps']} steps"

    def train_now(self) -> Path | None:
        """Train (or reuse) the run of the current settings; the figure then shows its curve."""
        from ..trainer import run_dir_for, train

        values = self.values
        try:
            cfg = try_config(self.base, **values)
            out = run_dir_for(cfg, self.runs)
            self.button.disabled, self.button.description = True, "training..."
            t0 = time.perf_counter()
            train(cfg, out, resume=True, verbose=False)
            wall = time.perf_counter() - t0
        except ScsamError as err:
            self.message = f"not trained: {err}"
            self._update(**values)
            return None
        finally:
            self.button.disabled, self.button.description = False, "train this run"
        self.trained.append((self.settings_label(values), out, wall))
        self.message = f"trained in {wall:.0f} s: {out.name}"
        self._update(**values)
        return out

    def render(self, rampup: float, n_pos: int, n_neg: int, kind: str, backbone: str, steps: int) -> Figure:
        fig, (ax, aw) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
        for i, (label, run) in enumerate(self.committed.items()):  # grey, told apart by their dashes
            x, y = _curve(run, "sam")
            ax.plot(x, y, color="0.6", lw=1, ls=("-", "--", ":", "-.")[i % 4], label=f"{label} (committed)")
        for i, (label, run, _) in enumerate(self.trained):
            x, y = _curve(run, "sam")
            ax.plot(x, y, marker="o", ms=3, color=f"C{i % 10}", label=label)
        ax.set_xlabel("training step")
        ax.set_ylabel("SAM's validation Dice")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
        t = np.arange(steps + 1)
        length = int(round(rampup * steps))
        aw.plot(t, [sigmoid_rampup(s, length, self.base.cotrain.rampup_scale) for s in t])
        aw.set_ylim(0, 1.05)
        aw.set_xlabel("training step")
        aw.set_title("w(t) of these settings", fontsize=9)
        title = self.settings_label(
            {
                "rampup": rampup,
                "n_pos": n_pos,
                "n_neg": n_neg,
                "kind": kind,
                "backbone": backbone,
                "steps": steps,
            }
        )
        fig.suptitle(f"{title}\n{self.message}" if self.message else title, fontsize=9)
        fig.tight_layout()
        return fig
