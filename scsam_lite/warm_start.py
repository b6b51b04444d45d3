"""Warm start: a run's models begin from another finished run's test-time weights instead of their initialisation.

The regime study's candidate: SC-SAM's U-Net from the split's trained U-Net and its SAM from the split's trained
PEFT-SAM, against each of those baselines continued alone for as many steps (the same warm start, no co-training).
``specialist.init_from`` and ``generalist.init_from`` name the source run folders; the config hash holds each
source's config hash, not its path (:func:`scsam_lite.config.run_identity`). Only weights move: optimiser states,
step counters and learning-rate schedules start afresh, in the candidate and in its controls alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import config as C
from .errors import ConfigError
from .methods import METHODS, Method
from .methods.base import load_model_state
from .runs import RunDir, load_checkpoint

#: which of a method's models each setting initialises; a mean teacher's teacher starts as its student does
SIDES: dict[str, tuple[str, ...]] = {
    "specialist.init_from": ("unet", "teacher"),
    "generalist.init_from": ("sam",),
}


def check_sources(cfg: C.Config) -> None:
    """Refuse a warm start whose source is not a finished run with weights, before anything is built or written."""
    for key in SIDES:
        folder = C.flat(cfg)[key]
        if folder is not None:
            _finished_run(folder, key)


def _finished_run(folder: str | Path, key: str) -> RunDir:
    """The source run folder, or an error naming the fix: a reference-run name (``lab/unet-s0``, as committed
    records write it) has no weights to start from, so it has to be retrained into a folder first."""
    run = RunDir(folder)
    if run.best_path.is_file() and run.config_path.is_file():
        return run
    if not run.path.exists() and C.run_identity(str(folder)).startswith("run:"):
        raise ConfigError(
            f"{key}={folder} names a reference run, whose record keeps no weights to start from",
            f"scsam-lite reference rerun {folder} --out DIR, then --set {key}=DIR (the same experiment: the "
            "same config hash)",
        )
    raise ConfigError(
        f"{key}={folder} is not a finished run with weights (no config.json or checkpoints/best.pt)",
        "give the --out of a finished run (a reference run kept as records only: scsam-lite reference "
        "rerun NAME --out DIR first, then that DIR)",
    )


def tested_weights(folder: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """A finished run's test-time model states (``best.pt``, each separately selected model from its own best, as
    ``trainer.load_best`` tests them) and its saved config record."""
    run = _finished_run(folder, "init_from")
    saved = run.read_config()
    source_cfg = C.config_from_dict(saved["config"])
    states = dict(load_checkpoint(run.best_path)["method"]["models"])
    for name in METHODS.get(source_cfg.train.method).selection_for(source_cfg).own:
        states[name] = load_checkpoint(run.best_model_path(name))["models"][name]
    return states, saved


def warm_start(method: Method, cfg: C.Config) -> dict[str, dict[str, Any]]:
    """Load each ``init_from`` source's test-time weights into ``method``'s models of that side (in place, so the
    optimisers keep their parameters); returns what was loaded, for the run's config.json."""
    loaded: dict[str, dict[str, Any]] = {}
    for key, names in SIDES.items():
        folder = C.flat(cfg)[key]
        targets = [n for n in names if n in method.models]
        if folder is None or not targets:
            continue
        states, saved = tested_weights(_finished_run(folder, key).path)
        for name in targets:
            source = name if name in states else "unet" if name == "teacher" else name
            if source not in states:
                raise ConfigError(
                    f"{key}={folder} is a {saved['config']['train']['method']} run: it has no {source} to start "
                    f"this run's {name} from",
                    "give a run that trained that model (the U-Net: unet, mean-teacher, sc-sam; SAM: peft-sam, sc-sam)",
                )
            try:
                load_model_state(method.models[name], states[source])
            except RuntimeError as err:  # another backbone, SAM or resolution: the shapes do not fit
                raise ConfigError(
                    f"{key}={folder}: its {source} does not fit this run's {name} ({str(err).splitlines()[0][:160]})",
                    "start from a run with the same specialist.name / generalist.name and input size",
                ) from None
        loaded[key] = {
            "folder": str(Path(folder).expanduser()),
            "config_hash": saved.get("config_hash"),
            "method": saved["config"]["train"]["method"],
            "models": targets,
        }
    return loaded
