"""Interactive explorers for the notebooks, built on core ipywidgets only.

Every widget follows :class:`~scsam_lite.widgets.explorer.Explorer`: named controls, a ``render`` method that
returns a matplotlib figure, and ``show()``, which in headless runs also leaves one static picture behind.
"""

from __future__ import annotations

from .dataset_browser import DatasetBrowser
from .explorer import Explorer, widget_mode
from .pseudo_labels import UNetPseudoLabelExplorer, pseudo_label

__all__ = ["DatasetBrowser", "Explorer", "UNetPseudoLabelExplorer", "pseudo_label", "widget_mode"]
