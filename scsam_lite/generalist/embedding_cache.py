"""Image embeddings computed once: training SAM's prompt encoder and decoder on a CPU.

With a frozen image encoder (``generalist.peft=none``) SAM's image embedding is a fixed function of the image, and
it is almost all of SAM's cost: LiteMedSAM's TinyViT takes about 1.3 s per 256 px image on a 2-core CPU, its
decoder a small fraction of that. So ``generalist.embedding_cache=true`` embeds every image of the dataset once
(un-augmented, encoder in eval mode), stores the embeddings on disk as float16, and training and evaluation read
them back instead of running the encoder. This is what makes the SAM side of SC-SAM trainable on real data
without a GPU.

The price: SAM only ever sees un-augmented images (the U-Net still trains on augmented ones; see
``methods/sc_sam.py`` for how the two frames are kept apart), and the encoder adapts at most in its last blocks: with
adapters or LoRA there, the activations before the first adapted block are stored instead (``encoder_stages.py``).

The cache is keyed by the content itself (a hash of the dataset's images and of the encoder's weights, the input
size and the pixel normalisation), so a changed dataset, checkpoint or resolution can never be served stale
embeddings. It lives in ``<cache dir>/embeddings/<key>/`` and grows by shards: a run embeds only the items it
uses (its labeled and unlabeled images, validation and test; the ``lab`` preset trains on a subset of the
unlabeled pool) and every later run or widget adds what it lacks. Each shard (``shard-*.npy`` with its item list
``shard-*.index.npy``) is written under a temporary name and moved into place when complete, its item list last,
so an interrupted build keeps the shards it finished and nothing half-written is ever read.

Embeddings are looked up by dataset index only, so they are tied to the dataset they were computed from (its name,
resolution, item ids and images): :meth:`ImageEmbeddings.check` refuses other data, which would otherwise get the
embeddings of other images. Scoring a run on another dataset builds its method on that dataset, which embeds that
dataset's items (``scsam-lite evaluate RUN --dataset NAME``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import torch

from .. import paths
from ..data import SegData
from ..data.batches import load_images
from ..errors import ConfigError, DataError
from ..progress import progress_bar
from .encoder_stages import encoder_stages, frozen_prefix, raw_bytes, run_stages, state_bytes
from .sam import Generalist

#: Bump when the way embeddings are computed changes: every cached embedding goes stale.
EMBEDDING_VERSION = 1
#: items per shard: an interrupted build loses at most this many embeddings' work
SHARD_ITEMS = 64


def encoder_is_frozen(model: Generalist) -> bool:
    """Whether no parameter of the image encoder trains (adapters and LoRA included)."""
    return not any(p.requires_grad for p in model.image_encoder.parameters())


def embedding_key(model: Generalist, data: SegData, cut: int | None = None) -> str:
    """A hash of everything a stored item depends on: images, input size, normalisation and the encoder's weights
    and buffers, all of them for the finished embeddings, only the frozen stages before ``cut`` for activations
    stored there (the adapters after it change as they train, and differ between runs)."""
    h = hashlib.sha256()
    h.update(json.dumps([EMBEDDING_VERSION, model.name, model.image_size, data.images.shape]).encode())
    if cut is None:
        weights = [(n, raw_bytes(t)) for n, t in sorted(model.image_encoder.state_dict().items())]
    else:
        stages = encoder_stages(model.image_encoder)
        h.update(json.dumps(["cut", cut, stages[cut].name]).encode())
        weights = state_bytes(stages[:cut])
    h.update(np.ascontiguousarray(data.images).tobytes())
    for name, raw in weights:
        h.update(name.encode())
        h.update(raw)
    for buf in (model.pixel_mean, model.pixel_std):
        h.update(buf.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def cache_cut(model: Generalist) -> int | None:
    """Where the stored activations are taken: None for the finished embeddings (a frozen encoder), else the index
    of the encoder's first trainable stage (``encoder_stages.py``).

    Raises:
        ConfigError: the encoder's very first stage trains, so nothing before it could be stored.
    """
    if encoder_is_frozen(model):
        return None
    cut = frozen_prefix(model.image_encoder)
    if cut == 0:
        raise ConfigError(
            "the embedding cache stores what the encoder computes before its first trainable part, but here its "
            "first stage (the patch embedding) trains",
            "train adapters or LoRA in the last blocks only (e.g. --set generalist.adapter_blocks=last2), or "
            "turn generalist.embedding_cache off",
        )
    return cut


def encode(model: Generalist, images: torch.Tensor, cut: int | None) -> torch.Tensor:
    """What the cache stores for ``images``: the embeddings (``cut`` None) or the activations at stage ``cut``."""
    if cut is None:
        return model.embed(images)
    return run_stages(encoder_stages(model.image_encoder), model.preprocess(images), 0, cut)


class ImageEmbeddings:
    """The stored embeddings of a dataset's items: ``embeddings[index]`` -> float32 ``(len(index), C, h, w)``, or,
    where :attr:`cut` is set, the encoder's activations at that stage (:func:`image_embeddings` finishes them).

    Backed by memory-mapped float16 shards; only the rows asked for are read. Built by :func:`compute_embeddings`,
    which attaches the model: items asked for that are not stored yet are then embedded and stored first
    (:meth:`ensure`), so a widget or an evaluation may ask for any item.
    """

    def __init__(
        self,
        folder: Path,
        *,
        model: Generalist | None = None,
        data: SegData | None = None,
        device: torch.device | str = "cpu",
        batch_size: int = 8,
    ) -> None:
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self.model, self.data, self.device, self.batch_size = model, data, device, batch_size
        self._checked: list[SegData] = []  # other SegData objects found to hold the same items
        #: None: the items' finished embeddings; else the encoder stage whose input they are (see encoder_stages)
        self.cut: int | None = self.meta.get("cut")
        self._load_shards()

    def _load_shards(self) -> None:
        n = int(self.meta["items"])
        self.shards: list[np.ndarray] = []
        self.shard_of = np.full(n, -1, np.int64)  # which shard holds item i (-1: not stored yet)
        self.row_of = np.zeros(n, np.int64)
        legacy = self.folder / "embeddings.npy"  # version-1 caches held every item in one file
        files = [(np.arange(n), legacy)] if legacy.is_file() else []
        for index_file in sorted(self.folder.glob("shard-*.index.npy")):
            files.append((np.load(index_file), index_file.with_name(index_file.name.replace(".index", ""))))
        for index, path in files:
            self.shard_of[index] = len(self.shards)
            self.row_of[index] = np.arange(len(index))
            self.shards.append(np.load(path, mmap_mode="r"))

    def __len__(self) -> int:
        return int(self.meta["items"])

    def _source(self) -> tuple[str, int, int]:
        """(dataset, resolution, items) of the data these embeddings serve: the data attached, else the meta's."""
        if self.data is not None:
            return self.data.name, self.data.resolution, len(self.data)
        return self.meta["dataset"], int(self.meta["resolution"]), int(self.meta["items"])

    def describe(self) -> str:
        name, resolution, items = self._source()
        return f"{name} ({resolution} px, {items} items)"

    def check(self, data: SegData) -> None:
        """Raise a DataError unless ``data`` holds the items these embeddings were computed from (the same name,
        resolution, item ids and images, in the same order)."""
        if data is self.data or any(d is data for d in self._checked):
            return
        same = (data.name, data.resolution, len(data)) == self._source()
        if same and self.data is not None:
            same = list(self.data.ids) == list(data.ids) and np.array_equal(self.data.images, data.images)
        if not same:
            raise DataError(
                f"the stored SAM embeddings are of {self.describe()}, not of the items asked for "
                f"({data.name}, {data.resolution} px, {len(data)} items): looked up by index, they would be "
                "another image's",
                "score another dataset with `scsam-lite evaluate RUN --dataset NAME` (it embeds that dataset's "
                "items), or build the method on the data it segments",
            )
        self._checked.append(data)

    @property
    def stored(self) -> int:
        """How many items have their embedding stored."""
        return int((self.shard_of >= 0).sum())

    @property
    def nbytes(self) -> int:
        return int(sum(s.nbytes for s in self.shards))

    def missing(self, index: np.ndarray | list[int]) -> np.ndarray:
        """The items of ``index`` (unique, sorted) whose embeddings are not stored yet."""
        index = np.unique(np.asarray(index, dtype=np.int64))
        return index[self.shard_of[index] < 0]

    @torch.no_grad()
    def ensure(self, index: np.ndarray | list[int], *, desc: str | None = None) -> None:
        """Embed and store the items of ``index`` that are not stored yet (in shards of :data:`SHARD_ITEMS`)."""
        todo = self.missing(index)
        if len(todo) == 0:
            return
        if self.model is None or self.data is None:
            raise DataError(
                f"{len(todo)} items have no stored embedding in {self.folder}",
                "open the cache with compute_embeddings(model, data, ...) so that missing items are embedded",
            )
        model = self.model
        was_training = model.training
        model.eval()
        what = desc or f"embedding {len(todo)} {self.data.name} images with {model.name} (once; cached)"
        bar = progress_bar(len(todo), what, unit="img")
        try:
            for start in range(0, len(todo), SHARD_ITEMS):
                chunk = todo[start : start + SHARD_ITEMS]
                rows = []
                for b in range(0, len(chunk), self.batch_size):
                    idx = chunk[b : b + self.batch_size]
                    images = load_images(self.data, idx, self.device)
                    rows.append(encode(model, images, self.cut).float().cpu().numpy())
                    bar.update(len(idx))
                _write_shard(self.folder, chunk, np.concatenate(rows).astype(np.float16))
        except OSError as err:
            raise DataError(
                f"could not write the embedding cache in {self.folder}: {err}",
                "free disk space or point SCSAM_CACHE_DIR (or --set data.cache_dir=...) at a writable folder",
            ) from None
        finally:
            bar.close()
            model.train(was_training)
            self._load_shards()

    def __getitem__(self, index: np.ndarray | list[int]) -> torch.Tensor:
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise DataError(
                f"item index {int(index.max()) if index.max() >= len(self) else int(index.min())} is outside the "
                f"stored SAM embeddings of {self.describe()}",
                "segment items of the dataset the method was built on (scsam-lite evaluate RUN --dataset NAME "
                "builds it on another one)",
            )
        self.ensure(index)  # without a model, missing items are an error that names the fix
        shard, row = self.shard_of[index], self.row_of[index]
        out = np.empty((len(index), *self.shards[0].shape[1:]), np.float16)
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            order = sel[np.argsort(row[sel], kind="stable")]  # sequential reads within a shard
            out[order] = self.shards[s][row[order]]
        return torch.from_numpy(out).float()

    def to(self, index: np.ndarray | list[int], device: torch.device | str) -> torch.Tensor:
        return self[index].to(device, non_blocking=True)


def _write_shard(folder: Path, index: np.ndarray, embeddings: np.ndarray) -> None:
    """One shard, each file written under a temporary name and renamed; the item list last (it makes the shard)."""
    name = f"shard-{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:6]}"
    for suffix, array in (("npy", embeddings), ("index.npy", index.astype(np.int64))):
        tmp = folder / f"{name}.{suffix}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, array)
            os.replace(tmp, folder / f"{name}.{suffix}")
        except BaseException:
            tmp.unlink(missing_ok=True)
            (folder / f"{name}.npy").unlink(missing_ok=True)
            raise


def compute_embeddings(
    model: Generalist,
    data: SegData,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    cache_dir: str | os.PathLike | None = None,
    index: np.ndarray | list[int] | None = None,
) -> ImageEmbeddings:
    """The cached embeddings of ``data`` under ``model``'s frozen encoder, with the items of ``index`` (default:
    every item) computed now if not stored yet; other items are computed when first asked for.

    With adapters or LoRA in the encoder's last blocks, what is stored is the activation before the first trainable
    stage (:func:`cache_cut`), and :func:`image_embeddings` runs the rest of the encoder on it.

    Raises:
        ConfigError: the encoder's first stage trains (nothing before it to store).
        DataError: the cache folder cannot be written.
    """
    cut = cache_cut(model)
    key = embedding_key(model, data, cut)
    root = paths.cache_dir(cache_dir) / "embeddings"
    folder = root / key
    try:
        if not (folder / "meta.json").is_file():
            folder.mkdir(parents=True, exist_ok=True)
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
            if cut is not None:
                meta.update(cut=cut, cut_stage=encoder_stages(model.image_encoder)[cut].name)
            tmp = folder / f"meta.json.tmp-{os.getpid()}"
            tmp.write_text(json.dumps(meta, indent=2))
            os.replace(tmp, folder / "meta.json")
        _remove_stale_temporaries(folder)
    except OSError as err:
        raise DataError(
            f"could not write the embedding cache in {root}: {err}",
            "free disk space or point SCSAM_CACHE_DIR (or --set data.cache_dir=...) at a writable folder",
        ) from None
    emb = ImageEmbeddings(folder, model=model, data=data, device=device, batch_size=batch_size)
    emb.ensure(np.arange(len(data)) if index is None else index)
    return emb


def _remove_stale_temporaries(folder: Path, older_than_s: float = 3600.0) -> None:
    """Temporary files of a build killed mid-write (another process's build in progress is younger)."""
    now = time.time()
    for tmp in folder.glob("*.tmp-*"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
        except OSError:
            pass


def embeddings_for_run(
    cfg, data: SegData, model: Generalist, device: torch.device | str
) -> ImageEmbeddings | None:  # cfg: config.Config
    """The run's stored embeddings if ``generalist.embedding_cache`` is on, else None. Nothing is computed here:
    the trainer embeds the items the run uses (:func:`run_items`) before the first step, anything else is
    embedded when first asked for."""
    if not cfg.generalist.embedding_cache:
        return None
    batch = max(1, min(cfg.train.eval_batch_size, 32))
    return compute_embeddings(
        model, data, device=device, batch_size=batch, cache_dir=cfg.data.cache_dir, index=[]
    )


def run_items(data: SegData, split, *, unlabeled: bool = True) -> np.ndarray:  # split: data.LabelSplit
    """The items a run touches: its labeled training images, its unlabeled ones if it learns from them (a
    supervised method's split still lists the rest of the pool as unlabeled), validation and test."""
    parts = [
        split.labeled,
        split.unlabeled if unlabeled else [],
        *(data.splits.get(s, []) for s in ("val", "test")),
    ]
    return np.unique(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))


def segment(
    model: Generalist,
    embeddings: ImageEmbeddings | None,
    images: torch.Tensor,
    index: np.ndarray | None,
    points=None,
    boxes: torch.Tensor | None = None,
    token_class: torch.Tensor | None = None,
) -> torch.Tensor:
    """SAM's mask logits ``(B, 1, H, W)``: from the stored embeddings of items ``index`` if there are any, else
    by running the encoder on ``images``. Prompts are in the images' pixel frame, as for ``model(...)``;
    ``token_class``: see :meth:`Generalist.decode`."""
    if embeddings is None:
        return model(images, points, boxes, token_class=token_class)
    if index is None:
        raise ValueError("with stored embeddings, SAM needs the images' dataset indices (index=...)")
    emb = image_embeddings(model, embeddings, index, images.device)
    return model.decode(emb, points, boxes, size=tuple(images.shape[-2:]), token_class=token_class)


def image_embeddings(
    model: Generalist, embeddings: ImageEmbeddings, index: np.ndarray, device: torch.device | str
) -> torch.Tensor:
    """SAM's image embeddings of items ``index``: read back, and where the cache holds activations part-way
    through the encoder, finished by its remaining (trainable) stages, with gradients where they train."""
    stored = embeddings.to(index, device)
    if embeddings.cut is None:
        return stored
    return run_stages(encoder_stages(model.image_encoder), stored, embeddings.cut)
