"""`python main.py --desktop [FILE...]`: the server on a private loopback port, the editor in a window."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from desktop.bridge import DesktopBridge
from desktop.instance import claim, socket_path
from desktop.system_modules import lend_system_gi

log = logging.getLogger("latentgraph.desktop")

ICON = Path(__file__).resolve().parent / "latentgraph.svg"
SETUP_HINT = ("Desktop mode needs pywebview and a system web view. On Debian/Ubuntu run "
              "`make desktop` (it installs python3-gi and gir1.2-webkit2-4.1 with apt, and "
              "pywebview with pip), or use the browser: `python main.py --auto-launch`.")


def build_parser() -> argparse.ArgumentParser:
    from server.main import build_parser as server_parser

    parser = server_parser()
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="workflows to open in tabs (.json, or a .png with a workflow)")
    return parser


def _port_given(argv: list[str]) -> bool:
    return any(a == "--port" or a.startswith("--port=") for a in argv)


def import_webview():
    """pywebview with a GUI backend, or None (the caller explains what to install)."""
    lend_system_gi()
    try:
        import webview
    except ImportError:
        return None
    return webview


def main(argv: list[str]) -> int:
    from app.bootstrap import create_runtime
    from app.settings import Settings
    from engine.extra_model_paths import ExtraModelPathsError
    from server.main import config_from_args, worker_recipe
    from server.security import SecurityPolicy

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    if not config.loopback_only:
        print("Desktop mode serves only this machine; drop --listen.", file=sys.stderr)
        return 2
    settings = Settings.from_args(args)
    config.worker_recipe = worker_recipe(args, settings)
    user_directory = settings.user_directory or settings.base_directory / "user"
    files = [str(Path(f).expanduser().resolve()) for f in args.files]
    bridge = DesktopBridge()
    focus = threading.Event()

    def files_from_another_launch(paths: list[str]) -> None:
        bridge._queue_files(paths)
        focus.set()

    user_directory.mkdir(parents=True, exist_ok=True)
    listener = claim(socket_path(user_directory), files, files_from_another_launch)
    if listener is None:
        print("Latentgraph is already open; its window was asked to come to the front"
              + (" and open the files." if files else "."))
        return 0
    webview = import_webview()
    if webview is None:
        listener.close()
        print(SETUP_HINT, file=sys.stderr)
        return 1
    from desktop.server_thread import BackgroundServer

    server: BackgroundServer | None = None
    try:
        try:
            runtime = create_runtime(settings)
        except ExtraModelPathsError as exc:
            print(f"Cannot start: {exc}", file=sys.stderr)
            return 1
        if not _port_given(argv):
            config.port = 0  # any free port: several users, or a browser-mode server beside us
        config.token = config.token or SecurityPolicy.generate_token()
        server = BackgroundServer(runtime, config)
        try:
            port = server.start()
        except RuntimeError:  # serve() has printed why (port in use, queue file locked...)
            return 1
        window = webview.create_window("Latentgraph", f"http://127.0.0.1:{port}/?token={config.token}",
                                       js_api=bridge, width=1440, height=900, min_size=(800, 500),
                                       background_color="#16181d")
        bridge._attach(window)
        bridge._queue_files(files)
        _close_on_signals(window)
        threading.Thread(target=_raise_on_request, args=(window, focus), daemon=True).start()
        webview.start(private_mode=False, storage_path=str(user_directory / "desktop-webview"),
                      icon=str(ICON))
        print("Window closed; stopping Latentgraph…", flush=True)
    finally:
        code = server.stop() if server is not None else 1
        listener.close()
    return code


def _raise_on_request(window, focus: threading.Event) -> None:  # noqa: ANN001 (pywebview Window)
    """Bring the window to the front each time another launch hands over to this one."""
    while True:
        focus.wait()
        focus.clear()
        try:
            window.restore()
            window.show()
        except Exception:  # the window is closing
            return


def _close_on_signals(window) -> None:  # noqa: ANN001 (pywebview Window)
    """Ctrl+C or SIGTERM in the terminal closes the window, which then stops the server."""
    def close(signum: int, frame: object) -> None:
        threading.Thread(target=window.destroy, daemon=True).start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, close)
