"""The notebook here is opened in JupyterLab by ``tests/test_browser_widgets.py``; nbval need not run it again.

(``--nbval-lax`` would otherwise collect every ``.ipynb`` under ``tests/``; the same headless run is already
covered by ``tests/test_widgets.py::test_executed_notebook_keeps_a_png``.)
"""

collect_ignore = ["widget_check.ipynb"]
