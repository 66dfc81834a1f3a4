"""``connecto view``: a local, offline Neuroglancer on a precomputed export.

Two servers on localhost, both from the ``neuroglancer`` Python package: its viewer server
(the bundled Neuroglancer client, no internet needed) and its CORS static-file server for
the export directory (``connecto export RUN OUT --format precomputed``). The viewer opens
with ``OUT/state.json``, its sources pointed at where the files are served.

>>> session = start_viewer("export")            # doctest: +SKIP
>>> session.url                                 # doctest: +SKIP
'http://127.0.0.1:37531/v/6b1f.../'
>>> session.stop()                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

EXPORT_DIR_NAME = "precomputed"  # the export `connecto view RUN` makes inside a run directory


@dataclass
class ViewerSession:
    """A running viewer: ``url`` opens it; ``viewer`` is the ``neuroglancer.Viewer`` (state, screenshots)."""

    url: str
    data_url: str
    viewer: object
    files: object

    def stop(self) -> None:
        self.files.stop()

    def screenshot(self, size=(640, 480), timeout_s: float = 60.0):
        """A screenshot (``numpy`` RGBA, height x width x 4) taken by the connected browser once all
        visible data has loaded; ``TimeoutError`` when no browser answers within ``timeout_s``."""
        done, reply = threading.Event(), []
        with self.viewer.config_state.txn() as s:
            s.show_ui_controls = False
            s.show_panel_borders = False
            s.viewer_size = list(size)
        self.viewer.async_screenshot(lambda r: (reply.append(r), done.set()))
        if not done.wait(timeout_s):
            raise TimeoutError(f"no screenshot from a browser at {self.url} within {timeout_s:.0f} s: is a browser "
                               "showing the viewer?")
        return reply[0].screenshot.image_pixels


def start_viewer(export_dir, *, bind_address: str = "127.0.0.1", port: int = 0) -> ViewerSession:
    """Serve ``export_dir`` and start a Neuroglancer viewer showing its ``state.json``."""
    import neuroglancer
    from neuroglancer.static_file_server import StaticFileServer

    from connecto.export_precomputed import is_export, served_state

    export_dir = Path(export_dir)
    if not is_export(export_dir):
        raise FileNotFoundError(f"{export_dir} is not a precomputed export (no state.json and segmentation/); make "
                                f"one with: connecto export RUN {export_dir} --format precomputed")
    files = StaticFileServer(static_dir=str(export_dir.resolve()), bind_address=bind_address, daemon=True)
    neuroglancer.set_server_bind_address(bind_address, port)
    viewer = neuroglancer.Viewer()
    viewer.set_state(neuroglancer.ViewerState(served_state(export_dir, files.url)))
    return ViewerSession(url=viewer.get_viewer_url(), data_url=files.url, viewer=viewer, files=files)


def export_for(path, *, overwrite: bool = False, progress: bool = True, echo=print) -> Path:
    """The export to show for ``path``: itself when it is an export; for a run directory,
    ``RUN/precomputed``, made first when missing (or with ``overwrite``)."""
    from connecto.export_precomputed import export_precomputed, is_export

    path = Path(path)
    if is_export(path):
        return path
    if not (path / "run.json").exists():
        raise FileNotFoundError(f"{path} is neither a precomputed export (state.json) nor a run directory (run.json)")
    out = path / EXPORT_DIR_NAME
    if overwrite or not is_export(out):
        echo(f"exporting {path} -> {out} (precomputed: raw, segmentation, meshes, skeletons, synapses)")
        export_precomputed(path, out, overwrite=True, progress=progress)
    return out


def wait_forever(echo=print) -> None:  # pragma: no cover - interactive
    import time

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("viewer stopped")


def open_browser(url: str) -> bool:  # pragma: no cover - interactive
    import webbrowser

    return webbrowser.open(url)
