"""The SC-SAM paper's Dice scores, kept as data so notebooks can put them beside what a run measures.

Every number here is published in the SC-SAM paper, not measured by this code. They are test Dice scores in
percent, with SAM ViT-B as the generalist and the paper's full schedule (the ``paper`` preset is this package's
version of it). Runs of this package report Dice as a fraction in [0, 1]; multiply by 100 to compare, and keep in
mind that a quick or classroom run differs from the paper's set-up in SAM, input size and number of steps.

Each row also names the sweep grid of :mod:`scsam_lite.sweeps` that asks the same question, and the variant of that
grid closest to the paper's setting, so a published number can be found beside a measured one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: What the ``source`` column says on every row: a citation, not a measurement.
SOURCE = "SC-SAM paper (published)"
#: The generalist behind every published number.
GENERALIST = "SAM ViT-B"


@dataclass(frozen=True)
class PaperResult:
    """One published number: test Dice (%) of SC-SAM in one setting."""

    dataset: str  # the dataset's name in this package (``scsam-lite datasets``)
    labeled: float  # share of the training images with masks
    setting: str  # what the paper varied, in words
    dice: float  # test Dice in percent, as printed in the paper
    grid: str  # the sweep grid asking the same question
    variant: str  # that grid's variant closest to the paper's setting


RESULTS: tuple[PaperResult, ...] = (
    # PROMISE12, 5% labels: the full method and the ramp-up ablation (the paper's T = 10,000 of 40,000 steps)
    PaperResult("promise12", 0.05, "SC-SAM", 83.64, "rampup", "T = 1/4"),
    PaperResult("promise12", 0.05, "SC-SAM without ramp-up", 36.37, "rampup", "off"),
    # PROMISE12, 5% labels: the specialist's backbone
    PaperResult("promise12", 0.05, "specialist UNet", 83.64, "backbone", "unet"),
    PaperResult("promise12", 0.05, "specialist UNet++", 80.14, "backbone", "unet++"),
    PaperResult("promise12", 0.05, "specialist ResUNet++", 78.20, "backbone", "resunet"),
    PaperResult("promise12", 0.05, "specialist SwinUNet", 70.27, "backbone", "swin"),
    # the polyp datasets at 5% and 10% labels
    PaperResult("kvasir-seg", 0.05, "SC-SAM", 84.79, "labels", "5%"),
    PaperResult("kvasir-seg", 0.10, "SC-SAM", 86.27, "labels", "10%"),
    PaperResult("cvc-clinicdb", 0.05, "SC-SAM", 79.54, "labels", "5%"),
    PaperResult("cvc-clinicdb", 0.10, "SC-SAM", 83.06, "labels", "10%"),
)

COLUMNS = ["dataset", "labeled", "setting", "dice", "grid", "variant", "source"]


def paper_table(grid: str | None = None):
    """The published numbers as a pandas table (Dice in %), optionally only those of one sweep grid.

    A ``grid`` the paper has no numbers for gives an empty table with the same columns, not an error: most of
    this package's ablations (prompts, PEFT, tokens) are questions the paper did not publish numbers for.
    """
    import pandas as pd

    rows = [{**asdict(r), "source": SOURCE} for r in RESULTS if grid is None or r.grid == grid]
    return pd.DataFrame(rows, columns=COLUMNS)
