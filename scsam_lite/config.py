"""Run configs: plain dataclasses, named presets and ``--set key=value`` overrides.

A run is fully described by one :class:`Config`. It is printed before training, saved as ``config.json`` in the run
directory, and hashed (:func:`config_hash`) so the results registry can tell identical experiments apart from new
ones. Presets are nothing but named override dicts applied on top of the defaults.
"""

from __future__ import annotations

import copy as copy_module
import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .registry import unknown_name

#: which weights of a co-training run are tested (``cotrain.checkpoints``, ``scsam-lite evaluate --selection``)
Checkpoints = Literal["separate", "joint"]


@dataclass
class DataConfig:
    """Which data, at which resolution, with how many labels, in what batches."""

    dataset: str = "synthetic-polyp"
    data_root: str | None = None  # None: SCSAM_DATA_ROOT; synthetic datasets need none
    cache_dir: str | None = None  # None: SCSAM_CACHE_DIR or ~/.cache/scsam-lite/data
    resolution: int | None = None  # None: the dataset's default (synthetic 64, real 256)
    labeled: float = 0.05  # a ratio in (0, 1], or a count of items (cases for volumes) when > 1
    label_unit: Literal["auto", "image", "case", "slice"] = "auto"  # auto: image, or case for volumes
    split_seed: int = 0
    # use at most this many unlabeled items (a seeded subset; whole cases for volumes); None: all
    unlabeled_limit: int | None = None
    batch_labeled: int = 6
    batch_unlabeled: int = 6
    augment: Literal["weak", "none"] = "weak"
    # grey level (0-254) above which a mask pixel is foreground, for masks with more than two levels (resized or
    # anti-aliased copies); None: the dataset's own rule (cvc-clinicdb 127, others reject such masks)
    mask_threshold: int | None = None


@dataclass
class SpecialistConfig:
    """The U-Net side."""

    name: str = "unet"
    # warm start: a finished run folder whose test-time U-Net this run's U-Net (and a mean teacher's teacher)
    # starts from, instead of a random initialisation; hashed by that run's config hash (scsam_lite/warm_start.py)
    init_from: str | None = None


@dataclass
class SSLConfig:
    """Semi-supervised terms of the specialist's baselines (SSL4MIS defaults)."""

    ema_decay: float = 0.99  # mean teacher
    consistency: float = 0.1  # mean teacher: weight of the consistency loss after ramp-up
    consistency_rampup: int = 30000  # steps of the sigmoid ramp-up of that weight (SSL4MIS: 200 x 150)
    # entropy-min and sc-sam: weight of the entropy term (the reference's 0.9)
    entropy_weight: float = 0.9


@dataclass
class GeneralistConfig:
    """The SAM side: which SAM, at which input size, and which of its parameters train."""

    name: str = "sam_vit_b"  # sam_vit_b | sam_vit_l | sam_vit_h | lite_medsam | tiny
    checkpoint: str | None = None  # None: the official file from the checkpoint folder (downloaded once)
    pretrained: bool = True  # False: random initialisation (speed benchmarks); `tiny` is always random
    # SAM's input size; None: the generalist's own (256 for SAM, the paper's, and LiteMedSAM; 64 for tiny).
    # Images are resized to it and masks come back at the images' size.
    image_size: int | None = None
    # the resized relative-position weights of the global-attention blocks
    rel_pos: Literal["interpolate", "drop"] = "interpolate"
    # adapter: Med-SA; none: encoder frozen, only prompt encoder and decoder train
    peft: Literal["adapter", "lora", "none"] = "adapter"
    adapter_blocks: str = "all"  # all | lastN | none | comma list of block indices
    adapter_ratio: float = 0.25  # bottleneck width as a fraction of the block width (Med-SA)
    adapter_scale: float = 0.5  # weight of the adapter parallel to the MLP (Med-SA)
    # zero up-projections: at step 0 the adapted SAM is exactly the pretrained one
    adapter_zero_init: bool = True
    lora_rank: int = 4
    lora_alpha: float = 4.0
    train_prompt_encoder: bool = True
    train_mask_decoder: bool = True
    lr: float = 1e-4  # Adam, as the reference
    fast_attention: bool = True  # 4-D scaled_dot_product_attention (exact, incl. relative positions)
    compile: bool = False  # torch.compile the image encoder (GPU; the first steps are slow)
    # the mask decoder without work whose result is unused (generalist/fast_decoder.py; same masks up to float order)
    fast_decoder: bool = True
    # how a point's or box corner's position is encoded: sam (SAM's: coordinates divided by the input size, so
    # nearby pixels get similar codes) | reference (the reference code's, reproduced for the fidelity grid, not a
    # recommendation: the division is commented out there, so with coordinates up to 256 a position's code is
    # effectively a hash of it)
    point_encoding: Literal["sam", "reference"] = "sam"
    # warm start: a finished run folder whose test-time SAM (its trained parts) this run's SAM starts from
    init_from: str | None = None
    # pixel normalisation before the encoder: model (the generalist's own: ImageNet statistics for SAM, none for
    # LiteMedSAM) | none (raw [0, 1] intensities, as the reference feeds grey MRI to SAM)
    pixel_norm: Literal["model", "none"] = "model"
    # embed every image once with the frozen encoder and train the prompt encoder and decoder on the stored
    # embeddings (SAM then sees un-augmented images): SAM on real data on a CPU. With adapters or LoRA in the last
    # blocks only, what is stored is the activation before the first adapted block, and each step runs the rest
    embedding_cache: bool = False
    # images per encoder pass where no gradient reaches the encoder (None: the whole batch): memory, not results
    encoder_batch: int | None = None


@dataclass
class PromptConfig:
    """How masks become SAM prompts (see :mod:`scsam_lite.prompts`)."""

    n_pos: int = 5  # positive points (the reference: 5)
    n_neg: int = 5  # negative points (the reference: 5)
    strategy: Literal["random", "interior"] = "random"  # random: the reference's, uniform inside / outside
    kind: Literal["points", "box", "points+box"] = "points"
    eval_seed: int = 1234  # test-time prompts are seeded per image, so evaluation is repeatable


@dataclass
class CoTrainConfig:
    """SC-SAM's co-training terms (method ``sc-sam``)."""

    # w(t) = exp(-scale (1 - min(t, T)/T)^2) on SAM's loss on the U-Net's pseudo-labels; the reference: T = 10,000,
    # scale 5 (a summary of the paper drops the 5: scale 1)
    rampup_length: int = 10000
    rampup_scale: float = 5.0
    # weight of the U-Net's loss on SAM's pseudo-labels (the reference: 1, no ramp-up)
    unet_pseudo_weight: float = 1.0
    # also ramp that loss up with w(t) (not in the reference, whose pretrained SAM ViT-B gives usable masks from step
    # 0): a SAM that starts poor, e.g. LiteMedSAM prompted by an untrained U-Net, otherwise teaches the U-Net noise
    unet_rampup: bool = False
    # the reference's U-Net also minimises the entropy of its predictions (weight ssl.entropy_weight; which images:
    # entropy_scope)
    entropy: bool = True
    # where labeled images' prompts come from: unet (the reference: the U-Net, for every image) | gt
    labeled_prompts: Literal["unet", "gt"] = "unet"
    # extra prompt tokens from the image embedding (from KnowSAM; not in the paper): False (off) | True (one shared,
    # zero-initialised set appended to every pass) | per-class (the reference's: one trained set per pass, the
    # background's and the foreground's, non-zero initialised, given as that pass's box tokens)
    learned_tokens: bool | Literal["per-class"] = False
    # unlabeled images whose pseudo-labels and prompts are saved at every validation (0: none)
    probe_images: int = 4
    # SAM's two-class output: one-pass (one decode prompted for the foreground, its logit l read as [0, l]) |
    # two-pass (the reference: background and foreground each decoded from its own points, softmax over the two)
    sam_output: Literal["one-pass", "two-pass"] = "one-pass"
    # each CE + Dice term is loss_scale x (CE + Dice): 1.0 the reference's sum (picked on the lab profile, README
    # 'Differences from the reference code'); 0.5 as SSL4MIS and the U-Net baselines
    loss_scale: float = 1.0
    # the images whose U-Net entropy is minimised: batch (the reference: labeled and unlabeled; picked on the lab
    # profile) | unlabeled
    entropy_scope: Literal["batch", "unlabeled"] = "batch"
    # the weights tested: separate (the reference: the best SAM, prompted by the U-Net from the step where the
    # U-Net's own validation Dice was best; picked on the lab profile) | joint (both models from the step where SAM's
    # validation Dice was best). Both are saved, so `scsam-lite evaluate --selection` scores either afterwards
    checkpoints: Checkpoints = "separate"
    # the unlabeled images' view: weak (the batch's geometric augmentation, as the labeled ones) | strong (also the
    # photometric strong view of data/augment.py, as the reference gives its unlabeled stream a strong view)
    unlabeled_view: Literal["weak", "strong"] = "weak"
    # the soft Dice's denominator: sum (sum p + sum g, as SSL4MIS and the U-Net baselines) | squared (the
    # reference's co-training Dice: sum p^2 + sum g^2)
    dice_denominator: Literal["sum", "squared"] = "sum"


@dataclass
class TrainConfig:
    """The optimisation schedule shared by every method."""

    method: str = "unet"
    iterations: int = 6000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: Literal["poly", "linear", "constant"] = "poly"
    val_every: int = 200
    eval_batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    deterministic: bool = False
    channels_last: bool = True


@dataclass
class Config:
    """Everything a run depends on."""

    preset: str = "paper"
    data: DataConfig = field(default_factory=DataConfig)
    specialist: SpecialistConfig = field(default_factory=SpecialistConfig)
    ssl: SSLConfig = field(default_factory=SSLConfig)
    generalist: GeneralistConfig = field(default_factory=GeneralistConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    cotrain: CoTrainConfig = field(default_factory=CoTrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def pretty(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


#: Named presets: overrides on top of the defaults (which are the reference's settings for the U-Net).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        # CPU, synthetic data, about a minute: proves the loop, not the science.
        "data.dataset": "synthetic-polyp",
        "data.batch_labeled": 6,
        "data.batch_unlabeled": 6,
        "train.iterations": 600,
        "train.val_every": 100,
        "ssl.consistency_rampup": 300,
        "train.eval_batch_size": 64,
        "generalist.name": "tiny",
        "generalist.lr": 1e-3,  # the tiny SAM starts from random weights: 1e-4 barely moves it in 600 steps
        "cotrain.rampup_length": 300,
    },
    "classroom": {
        # a GPU lesson of a few minutes
        "train.iterations": 3000,
        "train.val_every": 250,
        "ssl.consistency_rampup": 1500,
        "cotrain.rampup_length": 1000,
        "generalist.name": "lite_medsam",
        # TinyViT's stages 2-3 (its last 8 blocks): gradients then never reach the 256x256 stages 0-1, the costly ones
        "generalist.adapter_blocks": "last8",
    },
    "lab": {
        # a laptop CPU on real data: Kvasir-SEG at 128 px, the pretrained LiteMedSAM with its encoder frozen and
        # its image embeddings stored (generalist/embedding_cache.py), a subset of the unlabeled pool so that the
        # embeddings take minutes, not half an hour; schedules sized by measurement (docs/course.md "The lab profile")
        "data.dataset": "kvasir-seg",
        "data.resolution": 128,
        "data.unlabeled_limit": 200,
        # 300 steps: in two 500-step sizing runs (docs/course.md "The lab profile") the U-Net's validation Dice peaked at step
        # 200 (alone and in sc-sam) and SAM's at 300
        "train.iterations": 300,
        "train.val_every": 50,
        "ssl.consistency_rampup": 150,
        "cotrain.rampup_length": 150,
        "generalist.name": "lite_medsam",
        "generalist.peft": "none",
        "generalist.embedding_cache": True,
        # memory, not results (unhashed: per-image scores are the same): one validation of lab sc-sam at 32 images
        # a batch peaks at 3.0 GB resident (two passes 4.4 GB), at 8 at 1.6 GB (2.0 GB), and a training process
        # keeps its peak (freed blocks are kept for speed); embedding batches are capped by the same number
        "train.eval_batch_size": 8,
        # LiteMedSAM's encoder peaks at about 0.2 GB per image at 256 px: notebook 04's live step (12 images,
        # the encoder run each step) peaked at 6.4 GB in one pass, 4 at a time keeps it under 4 GB
        "generalist.encoder_batch": 4,
    },
    "paper": {
        # the reference's schedule
        "data.resolution": 256,
        "data.batch_labeled": 6,
        "data.batch_unlabeled": 6,
        "train.iterations": 40000,
        "train.val_every": 200,
        "train.lr_schedule": "linear",  # the reference SC-SAM code decays both learning rates linearly
        # the reference's co-training step (docs/differences.md)
        "cotrain.sam_output": "two-pass",
        "cotrain.loss_scale": 1.0,
        "cotrain.entropy_scope": "batch",
        "cotrain.checkpoints": "separate",
        "cotrain.unlabeled_view": "strong",
        "cotrain.learned_tokens": "per-class",  # its Super_Prompt: one token network per pass
        "cotrain.dice_denominator": "squared",
        # its unnormalised point coordinates: what produced the paper's numbers, reproduced, not recommended
        "generalist.point_encoding": "reference",
    },
}

#: Settings added after runs were recorded, with the value that computes what those runs computed: a config at
#: that value leaves the key out of its hash, so every recorded run keeps its hash (and its reference run keeps
#: matching); any other value is hashed as usual.
ADDED_LATER: dict[str, Any] = {
    "generalist.point_encoding": "sam",
    "cotrain.dice_denominator": "sum",
    "data.mask_threshold": None,
    "specialist.init_from": None,
    "generalist.init_from": None,
}

#: Keys naming another run whose weights this one starts from: hashed by that run's config hash, not its path, so
#: the same warm start from the same experiment is the same experiment on any machine.
RUN_SOURCES = ("specialist.init_from", "generalist.init_from")

#: Keys that say where things are or how fast they run, not what is computed: left out of the config hash.
UNHASHED = {
    "data.data_root",
    "data.cache_dir",
    "train.device",
    "train.eval_batch_size",
    "train.channels_last",
    "generalist.fast_attention",
    "generalist.fast_decoder",
    "generalist.compile",
    "generalist.encoder_batch",
}


def _sections(cfg: Config) -> dict[str, Any]:
    return {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if dataclasses.is_dataclass(getattr(cfg, f.name))
    }


def all_keys(cfg: Config | None = None) -> list[str]:
    """Every settable ``section.field`` key."""
    cfg = cfg or Config()
    return [f"{s}.{f.name}" for s, sec in _sections(cfg).items() for f in dataclasses.fields(sec)]


def _resolve_key(cfg: Config, key: str) -> tuple[Any, str]:
    """The section object and field name for ``section.field`` or an unambiguous bare ``field``."""
    keys = all_keys(cfg)
    if "." not in key:
        matches = [k for k in keys if k.split(".", 1)[1] == key]
        if len(matches) == 1:
            key = matches[0]
        elif len(matches) > 1:
            raise ConfigError(f"config key {key!r} is ambiguous", f"write one of {', '.join(matches)}")
    if key not in keys:
        raise unknown_name("config key", key, keys)
    section, name = key.split(".", 1)
    return getattr(cfg, section), name


def _convert(value: Any, typ: Any, key: str) -> Any:
    """Turn a command-line string into the field's type (``none`` means None for optional fields)."""
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("none", "null", ""):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key) if len(inner) == 1 else value
    try:
        if typ is bool:
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ is int:
            return int(value)
        if typ is float:
            return float(value)
    except ValueError:
        raise ConfigError(
            f"{key}={value!r} is not a valid {typ.__name__}", f"give {key} a {typ.__name__} value"
        ) from None
    return value


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set one field from ``key`` (``section.field`` or a unique bare field name)."""
    section, name = _resolve_key(cfg, key)
    hints = typing.get_type_hints(type(section))
    setattr(section, name, _convert(value, hints[name], key))


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["train.lr=0.02", "seed=1"]`` -> ``{"train.lr": "0.02", "seed": "1"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}", "write e.g. --set train.lr=0.02")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def build_config(preset: str = "quick", overrides: dict[str, Any] | None = None, **fields: Any) -> Config:
    """Defaults, then the preset, then ``fields`` (e.g. ``method="unet"``), then ``overrides``."""
    if preset not in PRESETS:
        raise unknown_name("preset", preset, sorted(PRESETS))
    cfg = Config(preset=preset)
    for key, value in PRESETS[preset].items():
        set_value(cfg, key, value)
    for key, value in fields.items():
        if value is not None:
            set_value(cfg, key, value)
    for key, value in (overrides or {}).items():
        set_value(cfg, key, value)
    validate(cfg)
    return resolved(cfg, copy=False)


def resolved(cfg: Config, *, copy: bool = True) -> Config:
    """``cfg`` with its defaults-by-``None`` made explicit (the dataset's own resolution), so that the config a
    run saves, hashes and later resumes with is one and the same."""
    if copy:
        cfg = copy_module.deepcopy(cfg)
    if cfg.data.resolution is None:
        from .data import DATASETS

        cfg.data.resolution = DATASETS.get(cfg.data.dataset).default_resolution
    return cfg


#: words a ``bool | str`` setting reads as a bool
_BOOL_WORDS = {
    "true": True,
    "on": True,
    "1": True,
    "yes": True,
    "false": False,
    "off": False,
    "0": False,
    "no": False,
}


#: the values of the closed types a ``Literal`` may be joined with
_CLOSED: dict[Any, tuple[Any, ...]] = {bool: (False, True), type(None): (None,)}


def choices(typ: Any) -> tuple[Any, ...] | None:
    """The values a field annotated ``typ`` may take: a ``Literal``'s, joined with ``True, False`` in
    ``bool | Literal[...]``; None for an open type (any str, any int)."""
    if typing.get_origin(typ) is Literal:
        return typing.get_args(typ)
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        parts = [_CLOSED[a] if a in _CLOSED else choices(a) for a in typing.get_args(typ)]
        if all(part is not None for part in parts):
            return tuple(v for part in parts for v in part)
    return None


def _choices(cfg: Config) -> list[tuple[str, Any, tuple[Any, ...]]]:
    """``(key, value, allowed)`` for every field of ``cfg`` that takes one of a fixed set of values."""
    out = []
    for section, sec in _sections(cfg).items():
        hints = typing.get_type_hints(type(sec))
        for f in dataclasses.fields(sec):
            allowed = choices(hints[f.name])
            if allowed is not None:
                out.append((f"{section}.{f.name}", getattr(sec, f.name), allowed))
    return out


def validate(cfg: Config) -> None:
    d, t = cfg.data, cfg.train
    if d.labeled <= 0:
        raise ConfigError(
            f"data.labeled={d.labeled} must be positive", "use a ratio like 0.05 or a count like 44"
        )
    if d.labeled > 1 and d.labeled != int(d.labeled):
        raise ConfigError(
            f"data.labeled={d.labeled} is neither a ratio <= 1 nor a whole count", "use 0.05 or 44"
        )
    if t.iterations < 1 or t.val_every < 1:
        raise ConfigError("train.iterations and train.val_every must be at least 1")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(t.device)):
        raise ConfigError(
            f"train.device={t.device!r} is not a device",
            "use auto, cpu, cuda, cuda:0 (a GPU by number) or mps",
        )
    if d.batch_labeled < 1:
        raise ConfigError("data.batch_labeled must be at least 1")
    g, p = cfg.generalist, cfg.prompts
    tokens = cfg.cotrain.learned_tokens
    if isinstance(tokens, str) and tokens.lower() in _BOOL_WORDS:  # --set cotrain.learned_tokens=true
        cfg.cotrain.learned_tokens = _BOOL_WORDS[tokens.lower()]
    for key, value, allowed in _choices(cfg):
        if value not in allowed:
            raise unknown_name(key, str(value), [str(a).lower() for a in allowed])
    if g.image_size is not None and (g.image_size < 16 or g.image_size % 16):
        raise ConfigError(
            f"generalist.image_size={g.image_size} is not a multiple of 16", "use 256 (the paper's) or 1024"
        )
    if g.name == "lite_medsam" and g.image_size not in (None, 256):
        raise ConfigError(
            f"lite_medsam runs at 256 px only (its TinyViT has fixed-size attention biases), not {g.image_size}",
            "leave generalist.image_size unset (or 256)",
        )
    if g.encoder_batch is not None and g.encoder_batch < 1:
        raise ConfigError(
            f"generalist.encoder_batch={g.encoder_batch} must be at least 1",
            "use e.g. --set generalist.encoder_batch=4, or leave it unset (the whole batch in one pass)",
        )
    if g.embedding_cache and g.peft != "none" and g.adapter_blocks.strip().lower() == "all":
        raise ConfigError(
            f"generalist.embedding_cache with generalist.peft={g.peft} stores what the encoder computes before its "
            "first adapted block; with adapter_blocks=all that is its first layer, and every step would run "
            "nearly the whole encoder",
            "adapt the last blocks only (--set generalist.adapter_blocks=last2: LiteMedSAM's last stage), or "
            "--set generalist.peft=none (only the prompt encoder and mask decoder train)",
        )
    if p.n_pos < 0 or p.n_neg < 0 or (p.kind != "box" and p.n_pos + p.n_neg == 0):
        raise ConfigError(
            f"prompts.n_pos={p.n_pos}, prompts.n_neg={p.n_neg}: point prompts need at least one point",
            "use e.g. --set prompts.n_pos=5 --set prompts.n_neg=5, or --set prompts.kind=box",
        )


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from ``config.json`` (unknown keys are an error: the file belongs to another version)."""
    cfg = Config(preset=data.get("preset", "paper"))
    for section, values in data.items():
        if section == "preset":
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"config.json has an unexpected entry {section!r}")
        for name, value in values.items():
            set_value(cfg, f"{section}.{name}", value)
    return cfg


def flat(cfg: Config) -> dict[str, Any]:
    """``{"data.dataset": ..., "train.lr": ...}``."""
    return {f"{s}.{k}": v for s, sec in _sections(cfg).items() for k, v in dataclasses.asdict(sec).items()}


#: Sections a method never reads: left out of its hash, so that a U-Net baseline keeps its hash (and its committed
#: reference run keeps matching) when a co-training default changes. Methods not listed hash every section.
UNREAD_SECTIONS: dict[str, frozenset[str]] = {
    "unet": frozenset({"ssl", "generalist", "prompts", "cotrain"}),
    "mean-teacher": frozenset({"generalist", "prompts", "cotrain"}),
    "entropy-min": frozenset({"generalist", "prompts", "cotrain"}),
    "peft-sam": frozenset({"specialist", "ssl", "cotrain"}),
}


def hashed_items(cfg: Config) -> dict[str, Any]:
    """The settings that decide what ``cfg``'s method computes: :func:`config_hash`'s input."""
    unread = UNREAD_SECTIONS.get(cfg.train.method, frozenset())
    return {
        k: run_identity(v) if k in RUN_SOURCES and v is not None else v
        for k, v in flat(cfg).items()
        if k not in UNHASHED
        and k.split(".")[0] not in unread
        and not (k in ADDED_LATER and v == ADDED_LATER[k])
    }


def run_identity(folder: str) -> str:
    """What a warm start's source run stands for in a hash: ``run:<its config hash>`` read from its config.json (a
    run folder, or a reference-run name such as ``lab/unet-s0``, which a committed record uses so that its hash
    holds on any machine), or the value as given while there is none (training then refuses it, naming the fix)."""
    for candidate in (Path(folder).expanduser(), Path(__file__).parent / "reference_runs" / folder):
        try:
            return "run:" + json.loads((candidate / "config.json").read_text())["config_hash"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return str(folder)


def config_hash(cfg: Config) -> str:
    """A short hash of what the run computes (paths, device and the sections its method never reads left out):
    equal hash, same experiment."""
    items = hashed_items(cfg)
    blob = json.dumps(items, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def diff(a: Config, b: Config, ignore: set[str] = UNHASHED) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two configs."""
    fa, fb = flat(a), flat(b)
    return {k: (fa[k], fb.get(k)) for k in fa if k not in ignore and fa[k] != fb.get(k)}
