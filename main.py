"""Latentgraph entry point: `python main.py` serves the editor, `python main.py run WORKFLOW` runs headless."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the headless runner or the server; imports stay lazy so start-up is cheap."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        from cli.run import main as run_main

        return run_main(args[1:])
    from server.main import main as serve_main

    return serve_main(args)


if __name__ == "__main__":
    sys.exit(main())
