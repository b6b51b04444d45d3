"""Image embeddings computed once: training SAM's prompt encoder and decoder on a CPU.

With a frozen image encoder (``generalist.peft=none``) SAM's image embedding is a fixed function of the image, and
it is almost all of SAM's cost: LiteMedSAM's TinyViT takes about 1.3 s per 256 px image on a 2-core CPU, its
decoder a small fraction of that. So ``generalist.embedding_cache=true`` embeds every image of the dataset once
(un-augmented, encoder in eval mode), stores the embeddings on disk as float16, and training and evaluation read
them back instead of running the encoder. This is what makes the SAM side of SC-SAM trainable on real data
without a GPU.

The price: SAM only ever sees un-augmented images (the U-Net still trains on augmented ones; see
``methods/sc_sam.py`` for how the two frames are kept apart), and the encoder cannot be adapted.

The cache is keyed by the content itself (a hash of the dataset's images and of the encoder's weights, the input
size and the pixel normalisation), so a changed dataset, checkpoint or resolution can never be served stale
embeddings. It lives in ``<cache dir>/embeddings/<key>/`` and is written into a temporary folder that is moved
into place only when complete, so an interrupted build leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch

from .. import paths
from ..data import SegData
from ..data.batches import load_images
from ..errors import ConfigError, DataError
from ..progress import progress_bar
from .sam import Generalist

#: Bump when the way embeddings are computed changes: every cached embedding goes stale.
EMBEDDING_VERSION = 1


def encoder_is_frozen(model: Generalist) -> bool:
    """Whether no parameter of the image encoder trains (adapters and LoRA included)."""
    return not any(p.requires_grad for p in model.image_encoder.parameters())


def embedding_key(model: Generalist, data: SegData) -> str:
    """A hash of everything an embedding depends on: images, encoder weights and buffers, input size, normalisation."""
    h = hashlib.sha256()
    h.update(json.dumps([EMBEDDING_VERSION, model.name, model.image_size, data.images.shape]).encode())
    h.update(np.ascontiguousarray(data.images).tobytes())
    for name, tensor in sorted(model.image_encoder.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    for buf in (model.pixel_mean, model.pixel_std):
        h.update(buf.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


class ImageEmbeddings:
    """The embeddings of every item of a dataset: ``embeddings[index]`` -> float32 ``(len(index), C, h, w)``.

    Backed by a memory-mapped float16 ``.npy`` file; only the rows asked for are read.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.array = np.load(self.folder / "embeddings.npy", mmap_mode="r")
        self.meta = json.loads((self.folder / "meta.json").read_text())

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    def __getitem__(self, index: np.ndarray | list[int]) -> torch.Tensor:
        index = np.asarray(index, dtype=np.int64)
        order = np.argsort(index, kind="stable")  # sequential reads, then the asked order
        out = np.empty((len(index), *self.array.shape[1:]), np.float16)
        out[order] = self.array[index[order]]
        return torch.from_numpy(out).float()

    def to(self, index: np.ndarray | list[int], device: torch.device | str) -> torch.Tensor:
        return self[index].to(device, non_blocking=True)


@torch.no_grad()
def compute_embeddings(
    model: Generalist,
    data: SegData,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    cache_dir: str | os.PathLike | None = None,
) -> ImageEmbeddings:
    """The cached embeddings of every item of ``data`` under ``model``'s frozen encoder, computed if not there yet.

    Raises:
        ConfigError: the encoder has trainable parameters (its embeddings change as it trains, so they cannot
            be cached).
        DataError: the cache folder cannot be written.
    """
    if not encoder_is_frozen(model):
        raise ConfigError(
            "the embedding cache needs a frozen image encoder, but this one has trainable parameters "
            "(adapters, LoRA or an unfrozen encoder)",
            "use --set generalist.peft=none with generalist.embedding_cache=true, or turn the cache off",
        )
    key = embedding_key(model, data)
    root = paths.cache_dir(cache_dir) / "embeddings"
    folder = root / key
    if (folder / "meta.json").is_file():
        return ImageEmbeddings(folder)
    for old in root.glob(f"{key}.tmp-*"):  # what an interrupted build left behind
        shutil.rmtree(old, ignore_errors=True)
    tmp = root / f"{key}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        was_training = model.training
        model.eval()
        try:
            n = len(data)
            out = None
            desc = f"embedding {n} {data.name} images with {model.name} (once; cached in {root})"
            bar = progress_bar(n, desc, unit="img")
            for start in range(0, n, batch_size):
                idx = np.arange(start, min(start + batch_size, n))
                emb = model.embed(load_images(data, idx, device)).float().cpu().numpy()
                if out is None:
                    out = np.lib.format.open_memmap(
                        tmp / "embeddings.npy", mode="w+", dtype=np.float16, shape=(n, *emb.shape[1:])
                    )
                out[idx] = emb.astype(np.float16)
                bar.update(len(idx))
            bar.close()
            assert out is not None
            out.flush()
            del out
        finally:
            model.train(was_training)
        meta = {
            "key": key,
            "version": EMBEDDING_VERSION,
            "dataset": data.name,
            "resolution": data.resolution,
            "items": len(data),
            "generalist": model.name,
            "source": model.source,
            "image_size": model.image_size,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        os.replace(tmp, folder)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"could not write the embedding cache in {root}: {err}",
            "free disk space or point SCSAM_CACHE_DIR (or --set data.cache_dir=...) at a writable folder",
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ImageEmbeddings(folder)


def embeddings_for_run(
    cfg, data: SegData, model: Generalist, device: torch.device | str
) -> ImageEmbeddings | None:  # cfg: config.Config
    """The run's stored embeddings if ``generalist.embedding_cache`` is on (computed on first use), else None."""
    if not cfg.generalist.embedding_cache:
        return None
    batch = max(1, min(cfg.train.eval_batch_size, 32))
    return compute_embeddings(model, data, device=device, batch_size=batch, cache_dir=cfg.data.cache_dir)


def segment(
    model: Generalist,
    embeddings: ImageEmbeddings | None,
    images: torch.Tensor,
    index: np.ndarray | None,
    points=None,
    boxes: torch.Tensor | None = None,
) -> torch.Tensor:
    """SAM's mask logits ``(B, 1, H, W)``: from the stored embeddings of items ``index`` if there are any, else
    by running the encoder on ``images``. Prompts are in the images' pixel frame, as for ``model(...)``."""
    if embeddings is None:
        return model(images, points, boxes)
    if index is None:
        raise ValueError("with stored embeddings, SAM needs the images' dataset indices (index=...)")
    emb = embeddings.to(index, images.device)
    return model.decode(emb, points, boxes, size=tuple(images.shape[-2:]))
