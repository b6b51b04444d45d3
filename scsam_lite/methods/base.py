"""What every training method provides to the trainer.

A method owns its models and optimisers, does one training step on a :class:`~scsam_lite.data.Batch`, and
predicts foreground probabilities for evaluation, one entry per model it evaluates (``"unet"``, later ``"sam"``).
The trainer does the rest: the loop, the learning-rate schedule, validation, checkpoints, resume and the run record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Checkpoints, Config
from ..data import Batch, SegData
from ..errors import TrainingError
from ..runtime import Runtime


@dataclass(frozen=True)
class CheckpointSelection:
    """Which weights get tested, in one place: ``best.pt`` (the step of the best validation Dice of the method's
    ``selection_model``), with each model in ``own`` replaced by the weights of its own best validation step
    (``best_<name>.pt``). The models in ``saved`` have their own best saved whichever selection is tested, so that
    ``scsam-lite evaluate --selection`` can score the other one afterwards."""

    saved: tuple[str, ...] = ()
    own: tuple[str, ...] = ()

    @property
    def tracked(self) -> tuple[str, ...]:
        """The models whose own best validation step the loop follows and saves."""
        return tuple(dict.fromkeys([*self.saved, *self.own]))

    def choose(self, selection: Checkpoints | None) -> CheckpointSelection:
        """``selection`` in place of the run's own (None: the run's): ``joint`` tests ``best.pt`` alone,
        ``separate`` each saved model's own best."""
        if selection is None:
            return self
        return replace(self, own=self.saved if selection == "separate" else ())


class Method:
    """Base class; subclasses fill ``models``/``optimizers`` in ``__init__`` and implement ``train_step``/``predict``."""

    #: whether batches carry unlabeled images (semi-supervised) or only labeled ones
    needs_unlabeled: bool = False
    #: the model whose validation Dice picks ``best.pt``
    selection_model: str = "unet"

    #: whether each validation also scores the models' pseudo-labels of the unlabeled images against their masks
    #: (masks never used for training; logged as ``pseudo_dice`` to show how good each teacher is over training)
    logs_pseudo_quality: bool = False

    @classmethod
    def selection_for(cls, cfg: Config) -> CheckpointSelection:
        """Which weights a run of ``cfg`` gets tested with: ``best.pt`` alone by default. A class method, so a
        finished run's test-time weights can be found from its config alone (a warm start's source)."""
        return CheckpointSelection()

    def checkpoint_selection(self) -> CheckpointSelection:
        """Which weights this run gets tested with (:meth:`selection_for` of its config)."""
        return self.selection_for(self.cfg)

    def __init__(self, cfg: Config, data: SegData, rt: Runtime) -> None:
        self.cfg, self.data, self.rt = cfg, data, rt
        self.models: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lr: dict[str, float] = {}
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.grad_scaler)

    # -- to implement ---------------------------------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        raise NotImplementedError

    def predict(
        self, images: torch.Tensor, *, masks: torch.Tensor | None = None, index: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        """Foreground probabilities ``(B, H, W)`` per evaluated model, for images ``(B, C, H, W)`` in [0, 1].

        ``masks`` (ground truth) is only for methods evaluated with ground-truth prompts (``peft-sam``), and
        ``index`` (the items' dataset indices) seeds their test-time prompts per image, so scores are repeatable.
        """
        raise NotImplementedError

    def accept_prompt_masks(self) -> bool:
        """Switch evaluation to prompting SAM from the ``masks`` given to :meth:`predict` (e.g. another run's U-Net
        predictions, ``scsam-lite evaluate RUN --prompts-from OTHER``); False if the method has no SAM to prompt."""
        return False

    # -- shared machinery -------------------------------------------------------------------------------------------
    def add_model(
        self, name: str, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
    ) -> nn.Module:
        model = model.to(self.rt.device)
        if self.cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.models[name] = model
        if optimizer is not None:
            self.optimizers[name] = optimizer
            self.base_lr[name] = optimizer.param_groups[0]["lr"]
        return model

    def autocast(self):
        return torch.autocast(
            self.rt.device.type, dtype=self.rt.amp_dtype, enabled=self.rt.amp_dtype is not None
        )

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return (
            images.contiguous(memory_format=torch.channels_last) if self.cfg.train.channels_last else images
        )

    def check_finite(self, losses: dict[str, torch.Tensor], step: int) -> None:
        """A NaN/inf loss stops the run before any weight changes: a method with two optimisers checks both losses
        before stepping either."""
        for name, loss in losses.items():
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the {name} loss became {loss.item()} at step {step}; no weight was changed by this step",
                    "start a new run (a new --out) with a lower learning rate (--set train.lr=..., "
                    "--set generalist.lr=...) or --set train.precision=fp32; resuming this run would meet the same "
                    "step again",
                )

    def step_optimizer(self, name: str, loss: torch.Tensor, step: int) -> None:
        """Backward and step one optimiser; a NaN/inf loss stops the run before any weight changes."""
        self.check_finite({name: loss}, step)
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)

    def finish_step(self) -> None:
        self.scaler.update()

    def set_lr_factor(self, factor: float) -> None:
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.base_lr[name] * factor

    def train(self, mode: bool = True) -> None:
        for m in self.models.values():
            m.train(mode)

    def state_dict(self) -> dict[str, Any]:
        return {
            "models": {k: model_state(m) for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        for k, m in self.models.items():
            load_model_state(m, state["models"][k])
        if not models_only:
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps of ``model``: everything, or for a model built from pretrained weights
    (``model.source`` is not ``"random"``) only its trainable parameters and buffers.

    A PEFT-SAM checkpoint is then megabytes instead of the 358 MB of a frozen ViT-B that the package rebuilds from
    the official file anyway.
    """
    full = model.state_dict()
    if getattr(model, "source", "random") == "random":
        return full
    keep = {n for n, p in model.named_parameters() if p.requires_grad} | {n for n, _ in model.named_buffers()}
    return {k: v for k, v in full.items() if k in keep}


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a (possibly trainable-only, see :func:`model_state`) state; anything else missing is an error."""
    if getattr(model, "source", "random") == "random":
        model.load_state_dict(state)
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    bad = [k for k in missing if k not in frozen]
    if bad or unexpected:
        raise RuntimeError(f"checkpoint does not fit: missing {bad[:3]}, unexpected {list(unexpected)[:3]}")
