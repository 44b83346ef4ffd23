"""Latentgraph entry point: `python main.py` serves the editor, `python main.py run WORKFLOW` runs
headless, `python main.py --desktop` opens the editor in its own window, and
`python main.py desktop-install` adds that window to the desktop menu."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the headless runner or the server; imports stay lazy so start-up is cheap."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        from cli.run import main as run_main

        return run_main(args[1:])
    if args and args[0] == "desktop-install":
        from desktop.install import main as install_main

        return install_main(args[1:])
    if "--desktop" in args:
        from desktop.app import main as desktop_main

        return desktop_main(args)
    from server.main import main as serve_main

    return serve_main(args)


if __name__ == "__main__":
    sys.exit(main())
