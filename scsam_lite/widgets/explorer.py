"""The one pattern every widget of the course follows.

An :class:`Explorer` holds named controls (sliders, dropdowns, checkboxes, all with ``continuous_update=False`` so
a drag renders once, on release), a :meth:`Explorer.render` method that turns the control values into a matplotlib
figure, and the wiring between them (:func:`ipywidgets.interactive_output`). Only core ipywidgets are used: no
ipympl, no mouse callbacks, so the same widget works in Jupyter, Colab, Kaggle and VS Code.

Testing and headless runs need no frontend: setting ``explorer.controls["item"].value = 3`` re-renders at once and
``explorer.figure`` holds the new figure.

Static or interactive
    A notebook executed without a frontend (nbval, papermill, nbconvert, Kaggle's "Save & Run All") keeps no live
    widget, so its saved copy would show no picture. :meth:`Explorer.show` therefore also displays one static image
    of the current state when :func:`widget_mode` says ``"static"``. The decision, in order:

    1. ``SCSAM_WIDGETS=static`` or ``SCSAM_WIDGETS=interactive`` decides outright.
    2. Interactive when a frontend is likely attached: ``JPY_SESSION_NAME`` (set by jupyter-server for a kernel it
       starts for an open notebook: JupyterLab, Notebook 7), Colab, a Kaggle session with
       ``KAGGLE_KERNEL_RUN_TYPE=Interactive``, or VS Code (``VSCODE_PID`` / ``VSCODE_CWD``).
    3. Static otherwise: nbval, papermill and nbconvert start kernels without any of these.

    A headless run started from inside VS Code's terminal inherits its variables and counts as interactive; set
    ``SCSAM_WIDGETS=static`` there. In the worst case a live session also shows the one extra static picture.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import ipywidgets as W
from IPython import get_ipython
from IPython.display import Image, display
from matplotlib.figure import Figure

from .. import viz
from ..errors import ConfigError
from ..paths import on_colab

#: Environment variable that forces the widget mode.
ENV_VAR = "SCSAM_WIDGETS"
MODES = ("static", "interactive")


def widget_mode() -> str:
    """``"interactive"`` when a frontend is likely attached, else ``"static"`` (see the module docstring)."""
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced in MODES:
        return forced
    if forced:
        raise ConfigError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a widget mode",
            f"set {ENV_VAR} to 'static' or 'interactive', or unset it to detect the frontend",
        )
    if os.environ.get("JPY_SESSION_NAME"):
        return "interactive"
    if on_colab() or os.environ.get("KAGGLE_KERNEL_RUN_TYPE", "").lower() == "interactive":
        return "interactive"
    if os.environ.get("VSCODE_PID") or os.environ.get("VSCODE_CWD"):
        return "interactive"
    return "static"


class Explorer:
    """Named controls + ``render(**values) -> Figure`` + the wiring, as one displayable object.

    Subclasses build their controls, then call ``super().__init__(controls)``; they implement :meth:`render` and
    may override :meth:`layout` to arrange the controls. Links between controls (a split dropdown that changes a
    slider's range) must be observed *before* calling ``super().__init__`` so they run before the re-render.
    """

    def __init__(self, controls: Mapping[str, W.ValueWidget], *, dpi: int = 80) -> None:
        self.controls: dict[str, W.ValueWidget] = dict(controls)
        for widget in self.controls.values():
            if hasattr(widget, "continuous_update"):
                widget.continuous_update = False
        self.dpi = dpi
        self.figure: Figure | None = None
        self.renders = 0
        self.output = W.interactive_output(self._update, self.controls)

    def render(self, **values: Any) -> Figure:
        """The figure for these control values. Subclasses implement it."""
        raise NotImplementedError

    @property
    def values(self) -> dict[str, Any]:
        return {name: w.value for name, w in self.controls.items()}

    def _update(self, **values: Any) -> None:
        fig = self.render(**values)
        if self.figure is not None and self.figure is not fig:
            viz.close(self.figure)
        self.figure = fig
        self.renders += 1
        # Show the render as a PNG and release it from pyplot at once: the inline backend would otherwise show it a
        # second time, and long sessions would pile figures up.
        viz.close(fig)
        if get_ipython() is not None:
            display(Image(data=viz.figure_png(fig, self.dpi)))

    def layout(self) -> W.Widget:
        """Controls above the picture, wrapping onto more rows when they don't fit (a squeezed slider is unusable)."""
        for control in self.controls.values():
            if isinstance(control, W.IntSlider | W.FloatSlider):
                control.layout.min_width = control.layout.min_width or "320px"
        row = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
        return W.VBox([row, self.output])

    def static_image(self) -> Image:
        """The current state as a PNG image (what headless runs keep)."""
        if self.figure is None:
            self._update(**self.values)
        return Image(data=viz.figure_png(self.figure, self.dpi))

    def show(self) -> None:
        """Display the widget; in headless runs also one static picture of its current state."""
        display(self.layout())
        if widget_mode() == "static":
            display(self.static_image())

    def _ipython_display_(self) -> None:
        self.show()
