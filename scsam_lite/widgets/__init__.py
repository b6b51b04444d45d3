"""Interactive explorers for the notebooks, built on core ipywidgets only.

Every widget follows :class:`~scsam_lite.widgets.explorer.Explorer`: named controls, a ``render`` method that
returns a matplotlib figure, and ``show()``, which in headless runs also leaves one static picture behind.
"""

from __future__ import annotations

from .ablations import AblationExplorer
from .cotraining import PseudoLabelExplorer, RampUpExplorer, probe_timeline
from .dataset_browser import DatasetBrowser
from .explorer import Explorer, widget_mode
from .prompt_explorer import PromptExplorer, prompt_gallery, zero_shot_scores, zero_shot_table
from .pseudo_labels import UNetPseudoLabelExplorer, pseudo_label
from .teaching import LossExplorer, PEFTCountExplorer
from .try_it import TryItTrainer

__all__ = [
    "AblationExplorer",
    "DatasetBrowser",
    "Explorer",
    "LossExplorer",
    "PEFTCountExplorer",
    "PromptExplorer",
    "PseudoLabelExplorer",
    "RampUpExplorer",
    "TryItTrainer",
    "UNetPseudoLabelExplorer",
    "probe_timeline",
    "prompt_gallery",
    "pseudo_label",
    "widget_mode",
    "zero_shot_scores",
    "zero_shot_table",
]
