"""`python main.py`: parse flags, build the runtime, serve the editor and API until Ctrl+C.

Listens on 127.0.0.1:8188 by default. `--listen` exposes the server on other interfaces and
then always requires an access token (`--auth-token`, or one generated and printed at start).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import sys
from typing import TYPE_CHECKING, Callable

from aiohttp import web

from server.app import build_app
from server.context import EngineRuntime, ServerConfig
from server.security import SecurityPolicy
from server.store import StoreInUseError
from server.workers.recipe import RuntimeRecipe

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("latentgraph.server")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1",
                       metavar="ADDR[,ADDR]",
                       help="addresses to listen on (default 127.0.0.1; bare --listen means "
                            "0.0.0.0). Any address but 127.0.0.1/::1 requires an access token.")
    group.add_argument("--port", type=int, default=8188, help="TCP port (default 8188)")
    group.add_argument("--auth-token", metavar="TOKEN",
                       help="access token clients must send (Authorization: Bearer TOKEN or the "
                            "cookie set by opening the printed URL). Generated when --listen is "
                            "used without it.")
    group.add_argument("--enable-cors-header", nargs="?", const="*", default=None,
                       metavar="ORIGIN[,ORIGIN]",
                       help="allow these web origins to call the API from the browser "
                            "(bare flag: any origin; only for trusted setups)")
    group.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="extra Host names the server answers to (DNS rebinding protection "
                            "refuses unknown names; IP addresses and localhost always work)")
    group.add_argument("--max-upload-size", type=float, default=100.0, metavar="MB",
                       help="largest accepted upload in megabytes (default 100)")
    group.add_argument("--web-root", "--front-end-root", dest="web_root", default=None,
                       metavar="DIR",
                       help="serve the editor from DIR instead of web/dist, e.g. the official "
                            "ComfyUI frontend (pip install comfyui-frontend-package; its "
                            "comfyui_frontend_package/static folder)")
    group.add_argument("--workers", type=int, default=1, metavar="N",
                       help="run prompts in a worker process (default 1): a crash in a node or a "
                            "native library then fails only its job. 0 runs them in the server "
                            "process (debugging)")
    group.add_argument("--auto-launch", action="store_true",
                       help="open the editor in the default web browser once the server is up")
    group.add_argument("--desktop", action="store_true",
                       help="open the editor in its own window (a private server on a free "
                            "loopback port); extra arguments are workflow files to open")


def build_parser() -> argparse.ArgumentParser:
    from app.settings import add_common_arguments

    parser = argparse.ArgumentParser(prog="main.py", description="Latentgraph editor and API server")
    add_common_arguments(parser)
    add_server_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    from pathlib import Path

    hosts = [h.strip() for h in str(args.listen).split(",") if h.strip()] or ["127.0.0.1"]
    cors = frozenset(o.strip().rstrip("/") for o in (args.enable_cors_header or "").split(",")
                     if o.strip())
    config = ServerConfig(hosts=hosts, port=args.port, token=args.auth_token, cors_origins=cors,
                          allowed_host_names=frozenset(h.lower() for h in args.allow_host),
                          max_upload_bytes=int(args.max_upload_size * 1024 * 1024),
                          web_root=Path(args.web_root).resolve() if args.web_root else None)
    if not config.loopback_only:
        names = {socket.gethostname().lower(), socket.getfqdn().lower()}
        config.allowed_host_names |= frozenset(n for n in names if n)
        if config.token is None:
            config.token = SecurityPolicy.generate_token()
    return config


def worker_recipe(args: argparse.Namespace, settings: "Settings") -> RuntimeRecipe | None:
    """How the worker process builds the same runtime as this server; None for `--workers 0`."""
    if args.workers == 0:
        return None
    return RuntimeRecipe("app.bootstrap:create_runtime", (settings,))


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def server_urls(config: ServerConfig, port: int) -> list[str]:
    suffix = f"?token={config.token}" if config.token else ""
    return [f"http://{_display_host(host)}:{port}/{suffix}" for host in config.hosts]


def _print_line(text: str) -> None:
    """Print one whole line with a single write. `print()` writes the text and the newline
    separately; with PYTHONUNBUFFERED (or a log file shared with stderr) a log line from the
    worker thread can land between them and glue itself onto the URL and its token."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def serve(runtime: EngineRuntime, config: ServerConfig,
                on_ready: Callable[[list[int]], None] | None = None,
                stop: asyncio.Event | None = None) -> int:
    """Serve until `stop` is set (or SIGINT/SIGTERM); returns the process exit code."""
    try:
        app = build_app(runtime, config)
    except StoreInUseError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 1
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    ports: list[int] = []
    try:
        for host in config.hosts:
            site = web.TCPSite(runner, host, config.port, reuse_address=True)
            await site.start()
            server = getattr(site, "_server", None)
            for sock in getattr(server, "sockets", None) or []:
                ports.append(sock.getsockname()[1])
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            print(f"Port {config.port} is already in use; pick another with --port.",
                  file=sys.stderr)
        else:
            print(f"Cannot listen on {config.hosts}: {exc}", file=sys.stderr)
        return 1
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    port = ports[0] if ports else config.port
    for url in server_urls(config, port):
        _print_line(f"Latentgraph is running at {url}")
    if config.token and not config.loopback_only:
        _print_line("Anyone on the network needs this token; keep the URL private.")
    if on_ready is not None:
        on_ready(ports)
    try:
        await stop.wait()
    finally:
        print("Stopping Latentgraph…", flush=True)
        await runner.cleanup()
    return 0


def open_in_browser(url: str) -> None:
    """--auto-launch: the default browser, from a thread (some browsers block until they exit)."""
    import threading
    import webbrowser

    threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    from app.bootstrap import create_runtime
    from app.settings import Settings
    from engine.extra_model_paths import ExtraModelPathsError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    settings = Settings.from_args(args)
    if args.workers not in (0, 1):
        parser.error("--workers takes 0 (run prompts in the server process) or 1")
    config.worker_recipe = worker_recipe(args, settings)
    try:
        runtime = create_runtime(settings)
    except ExtraModelPathsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 1
    on_ready = (lambda ports: open_in_browser(server_urls(config, ports[0] if ports else config.port)[0])
                if args.auto_launch else None)
    try:
        return asyncio.run(serve(runtime, config, on_ready=on_ready))
    except KeyboardInterrupt:
        return 0
