"""``connecto view`` in a real headless browser (Debian's chromium driven by playwright).

The viewer's own screenshot call is answered by the browser once every visible chunk and mesh
has loaded, so no test waits on a timer. Where chromium or playwright is missing the browser
tests skip, except in CI (``CI`` set), where they fail: ``make setup`` installs chromium.
"""

import os
import shutil
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from connecto.export_precomputed import export_precomputed

from .precomputed_run import make_small_run

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # WebGL without a GPU: chromium's software renderer, which it enables only when asked
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
SIZE = (480, 360)


def chromium_path() -> str | None:
    found = os.environ.get("CONNECTO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and os.path.exists(found) else None


def need_browser():
    """(playwright's sync API, chromium path), or a skip; in CI a failure."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package (a test extra)")
        sync_playwright = None
    path = chromium_path()
    if path is None:
        missing.append("chromium (make setup installs Debian's chromium; or set CONNECTO_CHROMIUM)")
    if missing:
        message = "the viewer test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright, path


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    run = make_small_run(tmp_path_factory.mktemp("viewer"))
    out = run.parent / "export"
    summary = export_precomputed(run, out, scheduler="sync", min_voxels=5000, progress=False)
    return out, summary["largest_segment"]


@pytest.fixture
def browser_page():
    sync_playwright, path = need_browser()
    with sync_playwright() as playwright:
        # playwright gives the browser a fresh profile directory of its own (--user-data-dir)
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": SIZE[0], "height": SIZE[1]})
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
            yield page, errors
        finally:
            browser.close()


def drawn(image: np.ndarray) -> int:
    """Pixels that differ from the image's most common colour (the panel's background)."""
    colours, counts = np.unique(image[..., :3].reshape(-1, 3), axis=0, return_counts=True)
    return int((image[..., :3] != colours[np.argmax(counts)]).any(axis=-1).sum())


def test_browser_draws_segmentation_and_the_selected_mesh(export, browser_page):
    from connecto.viewer import start_viewer

    out, largest = export
    page, errors = browser_page
    session = start_viewer(out)
    try:
        page.goto(session.url)
        page.wait_for_selector("canvas", timeout=60_000)
        assert "neuroglancer" in page.title().lower()
        with session.viewer.txn() as s:  # the segmentation alone, every segment, in one 2-D panel it fills
            s.layout = "xy"
            s.cross_section_scale = 0.3  # voxels per pixel: the 96-voxel-wide volume spans 320 pixels
            s.layers["raw"].visible = False
            s.layers["synapses"].visible = False
            s.layers["segmentation"].segments = set()
            s.show_axis_lines = False
            s.show_scale_bar = False
            s.show_default_annotations = False
        segmentation = session.screenshot(SIZE)
        with session.viewer.txn() as s:
            s.layers["segmentation"].visible = False
        nothing = session.screenshot(SIZE)
        colours = len(np.unique(segmentation[..., :3].reshape(-1, 3), axis=0))
        assert drawn(nothing) == 0
        assert drawn(segmentation) > 0.4 * SIZE[0] * SIZE[1] and colours > 10, (drawn(segmentation), colours)

        with session.viewer.txn() as s:  # the 3-D view: nothing selected, then the largest segment
            s.layout = "3d"
            s.layers["segmentation"].visible = True
            s.layers["segmentation"].segments = set()
        empty = session.screenshot(SIZE)
        with session.viewer.txn() as s:
            s.layers["segmentation"].segments = {largest}
        selected = session.screenshot(SIZE)
        assert drawn(empty) == 0
        assert drawn(selected) > 1000, drawn(selected)  # a surface, not a few skeleton lines
        assert errors == []
    finally:
        session.stop()


def test_view_command_serves_the_viewer_and_the_data(export):
    out, _ = export
    process = subprocess.Popen([sys.executable, "-m", "connecto.cli", "view", str(out), "--no-browser"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert lines[0].startswith("neuroglancer: http://127.0.0.1:"), lines
        viewer_url = lines[0].split(": ", 1)[1].strip()
        data_url = lines[1].split()[3].removesuffix(";")
        page = urllib.request.urlopen(viewer_url, timeout=30).read().decode()
        assert "<html" in page.lower() and "neuroglancer" in page.lower()
        info = urllib.request.urlopen(f"{data_url}/segmentation/info", timeout=30)
        assert info.headers["Access-Control-Allow-Origin"] == "*"
        assert b'"mesh": "mesh"' in info.read()
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert "viewer stopped" in output
