"""The generalist: SAM's three parts behind a forward pass made for training on batches.

segment-anything's ``Sam.forward`` takes a list of dicts and loops over images; its mask decoder repeats each
image embedding once per prompt set, which is right for "many prompts on one image" but wrong for a training batch
of one prompt set per image (B images would become B x B). :class:`Generalist` keeps SAM's modules unchanged and
runs them as training needs them:

- images come in as the rest of the package has them, ``(B, C, H, W)`` floats in [0, 1] at the dataset's
  resolution (grey images are repeated to three channels), and are resized to ``image_size`` and normalised here;
- prompts come in the images' pixel frame (see :mod:`scsam_lite.prompts`) and are mapped to SAM's frame here;
- masks come back as logits at the images' resolution.

``embed`` and ``decode`` are the two halves, so a widget can embed an image once and re-prompt it instantly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..prompts import Points
from .fast_decoder import fast_transformer, has_stock_head, mask_logits
from .learned_tokens import PerClassTokens


class Generalist(nn.Module):
    """SAM (image encoder, prompt encoder, mask decoder) at input size ``image_size``.

    Args:
        pixel_mean, pixel_std: per-channel normalisation on the [0, 1] scale (SAM: ImageNet statistics;
            LiteMedSAM: none, i.e. mean 0 and std 1).
        name: the registry name, kept for run records and tables.
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        *,
        image_size: int,
        pixel_mean: Sequence[float] = (0.485, 0.456, 0.406),
        pixel_std: Sequence[float] = (0.229, 0.224, 0.225),
        name: str = "sam",
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.image_size = image_size
        self.name = name
        #: where the weights came from ("random", a checkpoint path, ...), for run records
        self.source = "random"
        #: optional extra prompt tokens from the image embedding (see ``learned_tokens.py``); None: off
        self.learned_tokens: nn.Module | None = None
        #: compute masks as ``fast_decoder.py`` does (same result, less work); False: segment-anything's way
        self.fast_decoder = True
        #: images per encoder pass where no gradient reaches the encoder (None: the whole batch at once): the
        #: peak memory of a pass grows with its images (LiteMedSAM about 0.2 GB each), its result does not
        self.encoder_batch: int | None = None
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> Generalist:
        """Train mode, except that frozen batch norms stay in eval mode.

        LiteMedSAM's TinyViT has 27 BatchNorm layers. In train mode a BatchNorm normalises with the statistics of
        the current batch and overwrites its running statistics, even when its weights are frozen: a "frozen"
        encoder would then drift away from the pretrained one with every small medical batch, and an adapted
        model would not equal the pretrained one at step 0. A batch norm whose parameters are all frozen is
        therefore kept in eval mode (pretrained statistics, never updated), as parameter-efficient fine-tuning
        intends.
        """
        super().train(mode)
        if mode:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in module.parameters()
                ):
                    module.eval()
        return self

    # -- images -------------------------------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1 or 3, H, W)`` in [0, 1] -> SAM's normalised ``(B, 3, S, S)``."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(
                images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        return (images - self.pixel_mean) / self.pixel_std

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings ``(B, C, h, w)``: the expensive half, independent of the prompts."""
        x = self.preprocess(images)
        n = self.encoder_batch
        if n is None or len(x) <= n or not self._encoder_per_image():
            return self.image_encoder(x)
        return torch.cat([self.image_encoder(part) for part in x.split(n)])

    def _encoder_per_image(self) -> bool:
        """Whether the encoder may run in parts: no gradient reaches it (nothing to keep for a backward pass)
        and no batch norm in train mode (which would normalise each part with its own statistics)."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.image_encoder.parameters()):
            return False
        return not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
            for m in self.image_encoder.modules()
        )

    # -- prompts ------------------------------------------------------------------------------------------------
    def to_model_frame(self, xy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Map pixel coordinates ``(..., 2)`` as (x, y) in an ``(H, W)`` image to SAM's ``image_size`` frame.

        Pixel centres map to pixel centres: SAM adds 0.5 to a coordinate before normalising, so a pixel index
        ``i`` in a frame of size ``n`` goes to ``(i + 0.5) * S / n - 0.5``.
        """
        h, w = size
        scale = xy.new_tensor([self.image_size / w, self.image_size / h])
        return (xy + 0.5) * scale - 0.5

    def encode_prompts(
        self,
        points: Points | None,
        boxes: torch.Tensor | None,
        size: tuple[int, int],
        batch: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's sparse and dense prompt embeddings for one prompt set per image."""
        pts = None
        if points is not None:
            pts = (self.to_model_frame(points.coords.float(), size), points.labels.to(torch.int))
        box = None
        if boxes is not None:
            corners = self.to_model_frame(boxes.float().view(-1, 2, 2), size)
            box = corners.reshape(-1, 4)
        if pts is None and box is None:
            # no prompt at all: SAM's learned "no prompt" path (one not-a-point token per image)
            pts = (
                torch.zeros(batch, 1, 2, device=self.pixel_mean.device),
                -torch.ones(batch, 1, dtype=torch.int, device=self.pixel_mean.device),
            )
        return self.prompt_encoder(points=pts, boxes=box, masks=None)

    # -- masks --------------------------------------------------------------------------------------------------
    def decode(
        self,
        embeddings: torch.Tensor,
        points: Points | None = None,
        boxes: torch.Tensor | None = None,
        *,
        size: tuple[int, int],
        multimask: bool = False,
        token_class: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mask logits ``(B, 1 or 3, H, W)`` at ``size`` from embeddings and prompts in that frame.

        ``token_class`` ``(B,)``: with per-class learned tokens, which pass each decode is (0: background, 1:
        foreground; None: foreground)."""
        b = embeddings.shape[0]
        sparse, dense = self.encode_prompts(points, boxes, size, b)
        if isinstance(self.learned_tokens, PerClassTokens):
            tokens = self.learned_tokens(embeddings, token_class)
            sparse = torch.cat([sparse, tokens.to(sparse.dtype)], dim=1)
        elif self.learned_tokens is not None:
            sparse = torch.cat([sparse, self.learned_tokens(embeddings).to(sparse.dtype)], dim=1)
        fast = self.fast_decoder and has_stock_head(self.mask_decoder)
        return _decode_batched(
            self.mask_decoder,
            embeddings,
            self.prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            tokens=slice(1, None) if multimask else slice(0, 1),
            size=size,
            fast=fast,
        )

    def forward(
        self,
        images: torch.Tensor,
        points: Points | None = None,
        boxes: torch.Tensor | None = None,
        token_class: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mask logits ``(B, 1, H, W)`` for images ``(B, C, H, W)`` in [0, 1] and prompts in their pixel frame."""
        return self.decode(
            self.embed(images), points, boxes, size=tuple(images.shape[-2:]), token_class=token_class
        )


def _decode_batched(
    decoder: nn.Module,
    embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    *,
    tokens: slice,
    size: tuple[int, int],
    fast: bool = True,
) -> torch.Tensor:
    """SAM's ``MaskDecoder.predict_masks`` for one prompt set per image (no repeat of the image embedding).

    The same modules as segment-anything; on the stock path only the batch expansion differs. Returns the logits
    of the mask tokens ``tokens`` (0: the single-mask output; 1-3: the multimask ones) at ``size``, ``(B, T, *size)``.
    ``fast`` runs the two-way transformer without projecting the image tokens and forms only those tokens' logits,
    without the full-resolution feature map (``fast_decoder.py``; same result up to float order); else all four at
    the head's resolution, then the slice and a bilinear resize, as segment-anything does.
    """
    b = embeddings.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    prompt_tokens = torch.cat(
        [output_tokens.unsqueeze(0).expand(b, -1, -1), sparse.to(output_tokens.dtype)], dim=1
    )
    _, c, h, w = embeddings.shape
    if fast:
        wanted = range(decoder.num_mask_tokens)[tokens]
        # SAM's "no mask" dense embedding is one vector per image (stride 0 over the pixels): passed apart, so that a
        # stored embedding needs no gradient of its own (see two_way_transformer)
        if dense.stride(-1) == 0 and dense.stride(-2) == 0:
            image, shift = embeddings, dense[:, :, 0, 0]
            shift = shift[:1] if dense.stride(0) == 0 else shift
        else:
            image, shift = embeddings + dense, None
        transformer = fast_transformer(decoder.transformer)
        hs, src = transformer(image, image_pe, prompt_tokens, shift=shift, rows=[1 + i for i in wanted])
        hyper_in = torch.stack(
            [decoder.output_hypernetworks_mlps[i](hs[:, j]) for j, i in enumerate(wanted)], 1
        )
        return mask_logits(decoder, src, (h, w), hyper_in, size)
    src = embeddings + dense
    hs, src = decoder.transformer(src, image_pe.expand(b, -1, -1, -1), prompt_tokens)
    mask_tokens_out = hs[:, 1 : 1 + decoder.num_mask_tokens, :]
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )
    _, c, h, w = upscaled.shape
    low_res = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)[:, tokens]
    return F.interpolate(low_res, size=size, mode="bilinear", align_corners=False)


def as_two_class(logits: torch.Tensor) -> torch.Tensor:
    """SAM's single foreground logit ``(B, 1, H, W)`` as two-class logits ``(B, 2, H, W)``.

    Softmax over ``[0, l]`` is ``sigmoid(l)``, so the package's CE + Dice loss and metrics apply unchanged.
    """
    return torch.cat([torch.zeros_like(logits), logits], dim=1)
