"""The widgets in a real browser: JupyterLab on 127.0.0.1, headless Chromium, a slider moved by the keyboard.

The other widget tests drive the Python half (set ``controls["item"].value``, read ``explorer.figure``). Only a
browser shows that the frontend half works too: the widget JavaScript loads, the kernel runs in interactive mode
(``JPY_SESSION_NAME`` set by jupyter-server), and a slider moved by a user reaches the kernel and comes back as a
new picture although every control uses ``continuous_update=False``.

Skips, never fails, when the browser side is missing: Playwright's Python client (``pip install playwright``), a
Chromium executable (``$SCSAM_CHROMIUM``, else ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``;
Debian: ``apt-get install chromium``), or a Chromium that will not start. No browser is ever downloaded.

Screenshots land in the test's tmp folder and, with ``SCSAM_SAVE_SCREENSHOTS=DIR``, in ``DIR`` as well (that is how
``docs/images/`` is made)::

    SCSAM_SAVE_SCREENSHOTS=docs/images pytest -m slow tests/test_browser_widgets.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent / "browser" / "widget_check.ipynb"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SAVE_VAR = "SCSAM_SAVE_SCREENSHOTS"

# Bounded waits (seconds). A cold start on a 2-core CPU takes about 15 s in all; these leave room for slow CI.
SERVER_WAIT = 60
PAGE_WAIT = 60
WIDGET_WAIT = 90  # kernel start + importing torch + building the dataset
CHANGE_WAIT = 30

# The widgets' parts, inside the output of their cells: the dataset browser, then the two teaching widgets.
BROWSER_CELL = ".jp-Notebook .jp-CodeCell >> nth=1"
TEACHING_CELLS = {"loss_explorer": 2, "peft_counter": 3}  # code cell index of each, in widget_check.ipynb
SLIDER_HANDLE = ".widget-slider .noUi-handle"
PICTURE = ".widget-output img"
READOUT = ".widget-slider .widget-readout"
# The kernel is ready when the toolbar's indicator *and* the status bar say idle: the indicator alone already says
# "idle" while the status bar still reads "No Kernel | Initializing", and Run All clicked then loses cells.
KERNEL_READY = """() => {
    const indicator = document.querySelector(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator");
    const kernel = document.querySelector('.jp-StatusBar-TextItem[title^="Change kernel"]');
    const text = kernel ? kernel.textContent : "";
    return indicator?.dataset.status === "idle" && / [|] Idle$/.test(text) && !text.startsWith("No Kernel");
}"""


def chromium_executable() -> tuple[str | None, str]:
    """The Chromium to drive (``$SCSAM_CHROMIUM``, else the first known name on ``PATH``), or why there is none."""
    forced = os.environ.get("SCSAM_CHROMIUM")
    if forced:
        if Path(forced).is_file():
            return forced, ""
        return None, f"SCSAM_CHROMIUM={forced!r} is not a file"
    found = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    return found, f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}); apt-get install chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_env(home: Path) -> dict[str, str]:
    """The server's environment: widget mode detected (not forced), the inline backend, no user settings."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("SCSAM_WIDGETS", "MPLBACKEND", "JPY_SESSION_NAME")
    }
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("IPYTHONDIR", "ipython"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    # No "get Jupyter news?" toast over the notebook (and no request to the internet).
    notification = (
        home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    )
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return env


def api(port: int, token: str, path: str, method: str = "GET", timeout: float = 5) -> bytes:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.is_file() else ""


def wait_for_server(proc: subprocess.Popen, port: int, token: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with code {proc.returncode}:\n{tail(log)}")
        try:
            json.loads(api(port, token, "/api/status", timeout=2))
            return
        except (OSError, ValueError):
            time.sleep(0.3)
    pytest.fail(f"jupyter lab did not answer /api/status within {SERVER_WAIT} s:\n{tail(log)}")


def stop_server(proc: subprocess.Popen, port: int, token: str, runtime_dir: Path) -> None:
    """Shut the server down with its kernels; kill whatever is left (kernels run in their own sessions)."""
    if proc.poll() is None:
        try:
            api(port, token, "/api/shutdown", method="POST")
            proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    # A kernel reads its connection file from our private runtime folder: that names exactly our kernels.
    marker = str(runtime_dir).encode()
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in entry.read_bytes():
                os.kill(int(entry.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def save(shots: dict[str, bytes], folder: Path) -> None:
    """Write each PNG next to its final name, then move it in: no half-written screenshot."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in shots.items():
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(png)
        os.replace(tmp, folder / name)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the server is stopped with POSIX process groups")
def test_slider_moved_in_jupyterlab_rerenders_the_picture(tmp_path):
    try:
        from playwright import sync_api
    except ImportError as err:
        pytest.skip(f"Playwright's Python client is missing or broken ({err}); pip install playwright")
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip("jupyterlab is not installed")
    chromium, why_not = chromium_executable()
    if chromium is None:
        pytest.skip(why_not)

    try:
        pw = sync_api.sync_playwright().start()
    except Exception as err:  # the client's bundled driver does not run on this machine
        pytest.skip(f"Playwright's driver does not start: {str(err).splitlines()[0]}")
    try:
        try:
            browser = pw.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
        except sync_api.Error as err:
            pytest.skip(f"Chromium at {chromium} does not start: {str(err).splitlines()[0]}")
        shots: dict[str, bytes] = {}
        try:
            proc = with_jupyterlab(tmp_path, browser, sync_api.Error, shots)
        finally:
            browser.close()
    finally:
        pw.stop()

    assert proc.poll() is not None, "jupyter lab is still running"
    assert set(shots) == {
        "dataset_browser.png",
        "dataset_browser_item1.png",
        "dataset_browser_strong.png",
        "jupyterlab.png",
        "loss_explorer.png",
        "peft_counter.png",
    }
    if os.environ.get(SAVE_VAR):  # only a complete, passing set replaces the kept screenshots
        save(shots, Path(os.environ[SAVE_VAR]))


def with_jupyterlab(tmp_path: Path, browser, browser_error: type[Exception], shots: dict[str, bytes]):
    """Start JupyterLab on a copy of the notebook, drive it in ``browser``, always stop it; return the process."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    home = tmp_path / "jupyter"
    env = lab_env(home)
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_server(proc, port, token, log)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        step = Steps()
        try:
            drive(page, port, token, shots, step)
        except (browser_error, AssertionError) as err:
            (tmp_path / "failure.png").write_bytes(page.screenshot())
            notebook_text = "\n".join(page.locator(".jp-Notebook").all_inner_texts())
            pytest.fail(
                f"{type(err).__name__}: {str(err).splitlines()[0][:300]}\n--- done ---\n{step}\n"
                f"screenshot: {tmp_path / 'failure.png'}\n--- notebook ---\n{notebook_text[-2000:]}\n"
                f"--- jupyter lab log ---\n{tail(log)}"
            )
    finally:
        stop_server(proc, port, token, home / "runtime")
        save(shots, tmp_path / "screenshots")
    return proc


class Steps:
    """What the browser part has done so far, with times: the first thing to read when the test fails."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.done: list[str] = []

    def __call__(self, what: str) -> None:
        self.done.append(f"{time.monotonic() - self.start:5.1f} s  {what}")

    def __str__(self) -> str:
        return "\n".join(self.done)


def run_all(page, step: Steps) -> None:
    """Run > Run All Cells, clicked as a user would, until the last cell is queued.

    Should JupyterLab still ask "Select Kernel" (it did when Run All came before the kernel was ready), this answers
    Select, as a user would, and runs all again: at most three attempts.
    """
    last_prompt = page.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-InputPrompt")
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    for attempt in range(1, 4):
        if accept.count():
            accept.first.click()
            step("accepted JupyterLab's kernel dialog")
        page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook, not the file browser, is active
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not accept.count():
            if any(ch in last_prompt.inner_text() for ch in "*0123456789"):
                step(f"Run > Run All Cells clicked, all cells queued (attempt {attempt})")
                return
            time.sleep(0.2)
        step(f"Run > Run All Cells, attempt {attempt}: the last cell was not queued")
    raise AssertionError("Run > Run All Cells did not queue the last cell (3 attempts)")


def drive(page, port: int, token: str, shots: dict[str, bytes], step: Steps) -> None:
    """Open the notebook, Run All from the menu, move the slider, switch the view; fill ``shots``."""
    from playwright.sync_api import expect

    page.set_default_timeout(PAGE_WAIT * 1000)
    page.goto(f"http://127.0.0.1:{port}/lab/tree/widget_check.ipynb?token={token}")
    step("page loaded")
    page.locator(".jp-Notebook .jp-CodeCell").nth(1).wait_for()
    step("notebook shown")
    page.wait_for_function(KERNEL_READY)
    step("kernel started and idle")
    run_all(page, step)

    cell = page.locator(BROWSER_CELL)
    picture = cell.locator(PICTURE)
    cell.locator(SLIDER_HANDLE).wait_for(timeout=WIDGET_WAIT * 1000)
    picture.wait_for(timeout=WIDGET_WAIT * 1000)
    step("widget and picture shown")
    outputs = page.locator(".jp-Notebook .jp-CodeCell").nth(0).locator(".jp-OutputArea").inner_text()
    assert "widget mode: interactive" in outputs, f"the kernel did not detect the frontend: {outputs!r}"
    assert picture.count() == 1, "the widget shows more than one picture"
    assert cell.locator(READOUT).inner_text().strip() == "0"
    shots["dataset_browser.png"] = cell.screenshot()

    def changed(before: str, what: str) -> str:
        try:
            expect(picture).not_to_have_attribute("src", before, timeout=CHANGE_WAIT * 1000)
        except AssertionError:
            raise AssertionError(f"the picture did not change within {CHANGE_WAIT} s after {what}") from None
        assert picture.count() == 1, f"after {what} the widget shows more than one picture"
        step(f"picture changed after {what}")
        return picture.get_attribute("src")

    src = picture.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    cell.locator(SLIDER_HANDLE).focus()
    page.keyboard.press("ArrowRight")
    src_item1 = changed(src, "ArrowRight on the slider")
    assert cell.locator(READOUT).inner_text().strip() == "1"
    shots["dataset_browser_item1.png"] = cell.screenshot()

    cell.locator(".widget-dropdown select").nth(1).select_option("strong")
    changed(src_item1, "choosing the strong view")
    shots["dataset_browser_strong.png"] = cell.screenshot()
    shots["jupyterlab.png"] = page.screenshot()

    for (
        name,
        index,
    ) in TEACHING_CELLS.items():  # the loss explorer and the PEFT counter: first slider, one step
        other = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
        image = other.locator(PICTURE)
        other.locator(SLIDER_HANDLE).first.wait_for(timeout=WIDGET_WAIT * 1000)
        image.wait_for(timeout=WIDGET_WAIT * 1000)
        before = image.get_attribute("src")
        other.locator(SLIDER_HANDLE).first.focus()
        page.keyboard.press("ArrowRight")
        try:
            expect(image).not_to_have_attribute("src", before, timeout=CHANGE_WAIT * 1000)
        except AssertionError:
            raise AssertionError(f"{name}: the picture did not change within {CHANGE_WAIT} s") from None
        assert image.count() == 1, f"{name} shows more than one picture"
        step(f"{name}: picture changed after ArrowRight on its first slider")
        shots[f"{name}.png"] = other.screenshot()
