"""Colab and Kaggle: what a notebook does differently there.

One place for platform behaviour, so every notebook gets the same help:

- no GPU: :func:`profile_for` falls back to the quick profile instead of starting a GPU-sized run that would
  take hours on the CPU, and says how to turn one on (:func:`~scsam_lite.runtime.gpu_hint`, which ``setup()``
  prints too);
- a Colab runtime that disconnects loses ``/content``: :func:`persistent_runs_dir` puts run folders (and their
  ``last.pt``, from which ``train(..., resume=True)`` resumes) on Google Drive when asked to;
- Kaggle keeps only ``/kaggle/working`` as the notebook's output: run folders go there;
- a notebook's data: :func:`notebook_data` finds the profile's dataset (``SCSAM_DATA_ROOT``, an attached Kaggle
  input), downloads it when online, and otherwise says so in one line and continues on the synthetic polyps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import PRESETS, DataConfig
from .errors import ConfigError, ScsamError
from .paths import detect_platform
from .registry import unknown_name
from .runtime import Runtime, gpu_hint

#: Kaggle's writable folder, kept as the notebook's output after *Save & Run All*.
KAGGLE_WORKING = Path("/kaggle/working")
#: Where Colab mounts Google Drive; the user's files are in ``<DRIVE_MOUNT>/MyDrive``.
DRIVE_MOUNT = Path("/content/drive")


def profile_for(profile: str, rt: Runtime) -> str:
    """The profile to run: ``profile`` on a GPU; on the CPU ``quick`` and ``lab`` (both sized for it), else ``quick``.

    ``classroom`` and ``paper`` are sized for a GPU and would take hours on a CPU, so without one the notebook
    says how to enable it and continues with ``quick``. ``SCSAM_ALLOW_CPU=1`` keeps the asked profile anyway.
    """
    if profile not in PRESETS:
        raise unknown_name("preset", profile, sorted(PRESETS))
    if profile in CPU_PROFILES or rt.device.type != "cpu":
        return profile
    if os.environ.get("SCSAM_ALLOW_CPU", "").strip().lower() in ("1", "true", "yes"):
        print(
            f"SCSAM_ALLOW_CPU is set: keeping the {profile!r} profile on the CPU; expect it to be very slow"
        )
        return profile
    # on Colab / Kaggle setup() has just printed how to turn a GPU on; say it here only for a local machine
    hint = f"{gpu_hint(rt.platform)}; " if rt.platform == "local" else ""
    print(f"{hint}the {profile!r} profile needs a GPU: continuing with the quick profile on the CPU")
    return "quick"


#: profiles sized for a CPU: kept without a GPU
CPU_PROFILES = ("quick", "lab")


@dataclass
class NotebookData:
    """What a notebook trains on: the profile (``quick`` when the asked data could not be had), the dataset, the
    data root to pass on, and one line saying where the data came from."""

    profile: str
    dataset: str
    data_root: str | None
    source: str


def default_download_root() -> Path:
    """Where a notebook downloads a dataset when no data root is set: beside the package's caches."""
    from .paths import cache_dir

    return cache_dir().parent / "datasets"


def notebook_data(
    profile: str,
    dataset: str | None = None,
    data_root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    verbose: bool = True,
) -> NotebookData:
    """The data a notebook runs on, got the way a student would: never a traceback.

    ``dataset`` None means the profile's own (``lab``: Kvasir-SEG; ``quick``: the synthetic polyps). A real
    dataset is looked for in ``data_root`` (default ``SCSAM_DATA_ROOT``) and, on Kaggle, among the attached inputs;
    if it is not there and ``download`` is true, it is downloaded (checksum-verified, see ``scsam-lite download``)
    into ``data_root`` or :func:`default_download_root`. When that fails too (offline, no credentials, no space),
    one warning says why and the notebook continues on the synthetic polyps with the ``quick`` profile.
    """
    from .data.discover import find_existing

    if profile not in PRESETS:
        raise unknown_name("preset", profile, sorted(PRESETS))
    dataset = dataset or PRESETS[profile].get("data.dataset", DataConfig.dataset)
    root = None if data_root in (None, "") else str(data_root)
    if dataset.startswith("synthetic"):
        return NotebookData(profile, dataset, root, f"{dataset}: built in, nothing to download")
    found = find_existing(dataset, root)
    if found is not None:
        choice = NotebookData(profile, dataset, root, f"{dataset}: found in {found}")
    elif not download:
        return _fall_back(profile, dataset, "it is not in the data root and downloading is off", verbose)
    else:
        from .download.core import download as fetch

        target = Path(root) if root else default_download_root()
        try:
            where = fetch(dataset, target)
        except (ScsamError, OSError) as err:
            reason = err.message if isinstance(err, ScsamError) else str(err)
            return _fall_back(profile, dataset, f"not found, and the download failed: {reason}", verbose)
        choice = NotebookData(
            profile, dataset, str(target), f"{dataset}: downloaded and verified into {where}"
        )
    if verbose:
        print(choice.source)
    return choice


def _fall_back(profile: str, dataset: str, why: str, verbose: bool) -> NotebookData:
    import warnings

    fix = (
        f"to use it, set SCSAM_DATA_ROOT (or DATA_ROOT) to a folder holding {dataset}, attach it as a Kaggle input, "
        f"or run `scsam-lite download {dataset} --root DIR` while online"
    )
    message = f"{dataset} is not available ({why}); continuing with the synthetic polyps and the quick profile. {fix}"
    if verbose:
        warnings.warn(message, UserWarning, stacklevel=3)
    return NotebookData("quick", "synthetic-polyp", None, f"synthetic-polyp instead of {dataset} ({why})")


def _drive_folder(drive: str) -> Path:
    """``drive`` as a path: a folder name below MyDrive, or a full path under the mount point."""
    path = Path(drive).expanduser()
    if path.is_absolute():
        if not path.is_relative_to(DRIVE_MOUNT):
            raise ConfigError(
                f"DRIVE={drive!r} is not a Google Drive folder (Drive is mounted at {DRIVE_MOUNT})",
                f'give a folder name below MyDrive, e.g. DRIVE = "scsam-lite", or a path under {DRIVE_MOUNT}/MyDrive',
            )
        return path
    if path.parts[:1] == ("MyDrive",):
        path = path.relative_to("MyDrive")
    return DRIVE_MOUNT / "MyDrive" / path


def mount_drive() -> Path:
    """Mount Google Drive at :data:`DRIVE_MOUNT` unless it already is; return the ``MyDrive`` folder."""
    my_drive = DRIVE_MOUNT / "MyDrive"
    if my_drive.is_dir():
        return my_drive
    try:
        from google.colab import drive

        drive.mount(str(DRIVE_MOUNT))
    except Exception as exc:  # the user declined access, the auth timed out, or not a real Colab
        raise ScsamError(
            f"could not mount Google Drive at {DRIVE_MOUNT}: {exc}",
            "run the cell again and allow access to Google Drive when Colab asks, or set DRIVE = '' to keep "
            "runs in /content (lost when the runtime disconnects)",
        ) from None
    if not my_drive.is_dir():
        raise ScsamError(
            f"Google Drive was mounted but {my_drive} is not there",
            "restart the runtime (Runtime > Restart session) and run the notebook again",
        )
    return my_drive


def persistent_runs_dir(runs: str, drive: str | None = None) -> str:
    """Where run folders should live so that a disconnect loses nothing.

    - Colab with ``drive`` (a folder below MyDrive, e.g. ``"scsam-lite"``, or a ``/content/drive/...`` path):
      Drive is mounted if needed and runs go to ``<drive>/<runs>``; downloaded SAM checkpoints go to
      ``<drive>/checkpoints`` (``SCSAM_CHECKPOINT_DIR``, unless already set). Re-running a notebook after a
      disconnect then resumes every run from its ``last.pt``.
    - Kaggle: a relative ``runs`` goes below ``/kaggle/working``, which Kaggle keeps as the notebook's output.
    - Anywhere else, or an absolute ``runs``: ``runs`` unchanged.
    """
    platform = detect_platform()
    if drive and platform != "colab":
        print(f"DRIVE={drive!r} is ignored: Google Drive folders are for Colab only")
    if Path(runs).expanduser().is_absolute():
        if drive and platform == "colab":
            print(f"DRIVE={drive!r} is ignored: the runs folder {runs} is an absolute path")
        return runs
    if platform == "colab":
        if not drive:
            print(f"runs go to {runs} in /content, lost if the runtime disconnects; set DRIVE to keep them")
            return runs
        folder = _drive_folder(drive)
        mount_drive()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the Drive folder {folder}: {exc.strerror}",
                "pick another DRIVE folder name (one that is not a file and that you can write to)",
            ) from None
        os.environ.setdefault("SCSAM_CHECKPOINT_DIR", str(folder / "checkpoints"))
        out = str(folder / runs)
        print(f"runs go to Google Drive: {out} (after a disconnect, run the notebook again to resume)")
        return out
    if platform == "kaggle":
        out = str(KAGGLE_WORKING / runs)
        print(f"runs go to {out} (kept as this notebook's output)")
        return out
    return runs


def course_config(
    profile: str,
    method: str,
    *,
    dataset: str = "",
    labeled: float = 0.05,
    seed: int = 0,
    data_root: str | None = None,
    iterations: int | None = None,
    generalist: str = "",
    overrides: dict | None = None,
    mask_threshold: int | None = None,
):
    """The config a course notebook trains ``method`` with: the profile's preset, the notebook's parameters, and
    ``seed`` as both the training seed and the labeled split, as the reference runs do, so that a notebook on the
    ``lab`` profile is the same experiment (same hash) as the committed reference run it can load. ``overrides``
    (config keys, e.g. ``{"prompts.kind": "box"}``, the exercises' changes) come last. ``mask_threshold``: the
    grey level for masks with more than two levels (``data.mask_threshold``; None: the dataset's own rule)."""
    from .config import build_config

    fields = {
        "train.method": method,
        "data.labeled": labeled,
        "train.seed": seed,
        "data.split_seed": seed,
    }
    if dataset:
        fields["data.dataset"] = dataset
    if data_root:
        fields["data.data_root"] = data_root
    if generalist:
        fields["generalist.name"] = generalist
    if mask_threshold is not None:
        fields["data.mask_threshold"] = mask_threshold
    if iterations:
        fields["train.iterations"] = iterations
        fields["train.val_every"] = max(1, iterations // 6)
    return build_config(profile, {**fields, **(overrides or {})})
