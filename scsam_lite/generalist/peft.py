"""Freezing for parameter-efficient fine-tuning, and the table of what is trained.

After :func:`~scsam_lite.generalist.adapters.add_adapters` or :func:`~scsam_lite.generalist.lora.add_lora`,
:func:`freeze_for_peft` leaves trainable only the adapter / LoRA weights of the image encoder (plus the prompt
encoder and mask decoder, by default, as Med-SA trains them). :func:`trainable_table` and
:func:`format_trainable_table` show the result, e.g. "0.9 M of 94 M parameters trained".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from ..errors import ConfigError
from .adapters import Adapter
from .lora import LoRALinear

if TYPE_CHECKING:
    from ..config import GeneralistConfig


def peft_parameters(encoder: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The adapter and LoRA parameters inside ``encoder``: ``{"adapters": [...], "lora": [...]}``."""
    found: dict[str, list[nn.Parameter]] = {"adapters": [], "lora": []}
    for module in encoder.modules():
        if isinstance(module, Adapter):
            found["adapters"].extend(module.parameters())
        elif isinstance(module, LoRALinear):
            found["lora"].extend([*module.A.parameters(), *module.B.parameters()])
    return found


def freeze_for_peft(
    model: nn.Module,
    *,
    encoder_attr: str = "image_encoder",
    train_prompt_encoder: bool = True,
    train_mask_decoder: bool = True,
) -> None:
    """Freeze ``model.<encoder_attr>`` except its adapters / LoRA; train or freeze the prompt encoder and decoder.

    Other top-level parts of ``model`` are left as they are. Safe to call again (it sets, not toggles).

    Raises:
        ConfigError: ``model`` has no such encoder; the encoder has nothing to freeze (a freeze that froze
            nothing is a mistake in the caller, not a success); or nothing at all is trainable afterwards.
    """
    encoder = getattr(model, encoder_attr, None)
    if not isinstance(encoder, nn.Module):
        raise ConfigError(
            f"{type(model).__name__} has no image encoder at .{encoder_attr}",
            "pass a SAM-like model (image_encoder, prompt_encoder, mask_decoder) or name the encoder "
            "with encoder_attr=",
        )
    keep = {id(p) for group in peft_parameters(encoder).values() for p in group}
    frozen = 0
    for p in encoder.parameters():
        trainable = id(p) in keep
        p.requires_grad_(trainable)
        frozen += not trainable
    if frozen == 0:
        raise ConfigError(
            f"freeze_for_peft froze nothing: model.{encoder_attr} ({type(encoder).__name__}) has no parameters "
            "besides adapters / LoRA",
            "call it on the full model with its pretrained image encoder (build the model, load weights, add "
            "adapters or LoRA, then freeze)",
        )
    for name, train in (("prompt_encoder", train_prompt_encoder), ("mask_decoder", train_mask_decoder)):
        part = getattr(model, name, None)
        if isinstance(part, nn.Module):
            part.requires_grad_(train)
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(
            "nothing is trainable after freeze_for_peft: the encoder has no adapters or LoRA and the prompt "
            "encoder and mask decoder are frozen",
            "add adapters or LoRA first (add_adapters / add_lora), or keep train_mask_decoder=True",
        )


@dataclass
class ParamRow:
    """One line of the trainable-parameter table: a part of the model and its parameter counts."""

    part: str
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


def trainable_table(model: nn.Module, *, encoder_attr: str = "image_encoder") -> list[ParamRow]:
    """Parameter counts per part: encoder (its adapters and LoRA as their own rows), prompt encoder, decoder.

    The rows before ``total`` partition the model's parameters (each counted once, even if shared):
    ``image_encoder`` is the encoder without its adapters / LoRA, ``other`` is everything not in the named
    parts. Rows of parts the model lacks, and an empty ``other``, are left out.
    """
    seen: set[int] = set()

    def row(part: str, params) -> ParamRow:
        fresh = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        return ParamRow(part, sum(p.numel() for p in fresh if p.requires_grad), sum(p.numel() for p in fresh))

    rows: list[ParamRow] = []
    encoder = getattr(model, encoder_attr, None)
    if isinstance(encoder, nn.Module):
        peft = peft_parameters(encoder)
        # claim the adapter / LoRA parameters first so the encoder row is what is left
        extra = [
            row(f"{encoder_attr} (adapters)", peft["adapters"]),
            row(f"{encoder_attr} (lora)", peft["lora"]),
        ]
        rows.append(row(encoder_attr, encoder.parameters()))
        rows.extend(r for r in extra if r.total)
    for name in ("prompt_encoder", "mask_decoder"):
        part = getattr(model, name, None)
        if isinstance(part, nn.Module):
            rows.append(row(name, part.parameters()))
    other = row("other", model.parameters())
    if other.total:
        rows.append(other)
    rows.append(ParamRow("total", sum(r.trainable for r in rows), sum(r.total for r in rows)))
    return rows


def format_trainable_table(rows: list[ParamRow]) -> str:
    """The table as aligned text (counts in millions, % trainable), for notebooks and the command line."""
    width = max(len("part"), *(len(r.part) for r in rows))
    lines = [f"{'part':<{width}}  {'trainable':>10}  {'total':>10}  {'trained':>7}"]
    for r in rows:
        if r.part == "total":
            lines.append("-" * len(lines[0]))
        lines.append(
            f"{r.part:<{width}}  {r.trainable / 1e6:>9.3f}M  {r.total / 1e6:>9.3f}M  {r.percent:>6.1f}%"
        )
    return "\n".join(lines)


def what_trains(gcfg: GeneralistConfig) -> str:
    """One sentence, from a ``generalist`` config, on which parts of SAM train: notebooks print it so their text
    follows the profile (``lab`` adds no adapter and trains the decoder side only)."""
    parts = [
        name
        for name, on in (
            ("prompt encoder", gcfg.train_prompt_encoder),
            ("mask decoder", gcfg.train_mask_decoder),
        )
        if on
    ]
    side = " and ".join(parts) or "nothing else"
    if gcfg.peft == "none":
        stored = " its image embeddings are computed once and stored;" if gcfg.embedding_cache else ""
        return (
            f"peft=none: no adapter or LoRA; the image encoder is frozen whole;{stored} only the {side} train. "
            "Nothing in the encoder adapts to the domain, so this is decoder fine-tuning, not PEFT of the encoder."
        )
    where = (
        f"in encoder blocks '{gcfg.adapter_blocks}'" if gcfg.peft == "adapter" else "beside each block's qkv"
    )
    stored = (
        " What the encoder computes before the first adapted block is stored once; each step runs only the rest."
        if gcfg.embedding_cache
        else ""
    )
    return (
        f"peft={gcfg.peft}: the encoder's own weights are frozen; the {gcfg.peft} weights {where}, the {side} "
        f"train.{stored}"
    )
