"""`python main.py run WORKFLOW`: validate and execute a workflow headless, print the files written.

Exit codes: 0 success, 1 a node failed, 2 the workflow could not be read or failed validation,
130 interrupted (Ctrl-C asks the running node to stop at its next progress tick; a second
Ctrl-C aborts at once).

The WORKFLOW path and --output-directory are chosen by the person at the shell, so they are
taken as given; file names *inside* the workflow (images, models, filename prefixes) are
contained by the nodes through engine.paths.contained_path.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from app.settings import Settings, add_common_arguments
from engine.errors import WorkflowFormatError
from engine.interrupt import InterruptFlag

EXIT_OK, EXIT_NODE_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py run", description="Run a workflow headless: an API prompt, a ComfyUI workflow, "
                                        "a latentgraph.workflow file, or a PNG with workflow metadata.")
    parser.add_argument("workflow", type=Path, help="workflow file (.json or .png)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="override an input; NODE is a node id or a unique title, VALUE is JSON or text "
                             "(repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (status, files, per-node run report, error) instead of "
                             "the file list")
    add_common_arguments(parser)
    return parser


def parse_override(text: str) -> tuple[str, str, Any]:
    """"3.seed=42" -> ("3", "seed", 42); values that are not JSON stay text."""
    key, equals, raw = text.partition("=")
    target, dot, input_name = key.rpartition(".")
    if not equals or not dot or not target or not input_name:
        raise WorkflowFormatError(f"--set expects NODE.INPUT=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return target, input_name, value


class ProgressListener:
    """Feeds a tqdm bar from engine events: one tick per node that runs, sampler steps as postfix."""

    def __init__(self, stream: TextIO, enabled: bool, titles: dict[str, str]) -> None:
        self.stream = stream
        self.enabled = enabled
        self.titles = titles
        self.bar: Any = None
        self.total = 0

    def start(self, total: int) -> None:
        self.total = total
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=self.stream, unit="node", dynamic_ncols=True, leave=True)

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        if self.bar is None:
            return
        if event == "execution_cached":
            self.bar.total = max(self.total - len(data.get("nodes", [])), 0)
            self.bar.refresh()
        elif event == "executing" and data.get("node") is not None:
            self.bar.set_description(self.titles.get(data["node"], data["node"]), refresh=True)
        elif event == "progress":
            self.bar.set_postfix_str(f"{data['value']}/{data['max']}", refresh=True)
        elif event == "lg.node_report" and data.get("state") == "ran":
            self.bar.set_postfix_str("", refresh=False)
            self.bar.update(1)

    def on_preview(self, prompt_id: str, node_id: str, image_format: str, image: bytes) -> None:
        pass

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _titles(prompt: dict[str, Any]) -> dict[str, str]:
    return {node_id: f"{node_id} {(node.get('_meta') or {}).get('title') or node.get('class_type')}"
            for node_id, node in prompt.items() if isinstance(node, dict)}


def _print_validation_errors(result: Any, prompt: dict[str, Any], out: TextIO) -> None:
    titles = _titles(prompt)
    if result.error and result.error.get("type") != "prompt_outputs_failed_validation":
        print(f"error: {result.error['message']} {result.error.get('details', '')}".rstrip(), file=out)
    for node_id, entry in result.node_errors.items():
        for error in entry["errors"]:
            details = f": {error['details']}" if error.get("details") else ""
            print(f"  node {titles.get(node_id, node_id)} ({entry['class_type']}): {error['message']}{details}",
                  file=out)


def written_files(outcome: Any, runtime: Any) -> list[tuple[str, Path, bool]]:
    """(node id, path, served from cache) for every output-folder file named in the ui outputs."""
    files = []
    for node_id, ui in outcome.outputs.items():
        cached = outcome.run_report.get(node_id, {}).get("state") == "cached"
        for key in ("images", "gifs", "audio", "latents", "files"):
            for item in ui.get(key) or []:
                if not isinstance(item, dict) or item.get("type", "output") != "output" or "filename" not in item:
                    continue
                path = runtime.paths.output_directory.joinpath(*(p for p in str(item.get("subfolder", "")).split("/")
                                                                  if p), item["filename"])
                files.append((node_id, path, cached))
    return files


def main(argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=err)
    if not args.workflow.is_file():
        print(f"error: workflow file not found: {args.workflow}", file=err)
        return EXIT_INVALID

    from app.bootstrap import create_runtime
    from engine.validation import validate_prompt
    from engine.workflow import apply_overrides, load_workflow_file

    try:
        overrides = [parse_override(text) for text in args.overrides]
    except WorkflowFormatError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_INVALID
    runtime = create_runtime(Settings.from_args(args))
    for problem in runtime.registry.problems:
        print(f"warning: {problem.source}: {problem.message}", file=err)
    try:
        loaded = load_workflow_file(args.workflow, runtime.registry)
        prompt = apply_overrides(loaded.prompt, overrides)
    except (WorkflowFormatError, OSError) as exc:
        print(f"error: cannot read {args.workflow}: {exc}", file=err)
        return EXIT_INVALID
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=err)

    validation = validate_prompt(prompt, runtime.registry)
    if not validation.ok:
        print(f"error: the workflow failed validation ({validation.error['type']}):", file=err)
        _print_validation_errors(validation, prompt, err)
        return EXIT_INVALID
    if validation.node_errors:
        print("warning: some outputs failed validation and will not run:", file=err)
        _print_validation_errors(validation, prompt, err)

    listener = ProgressListener(err, not args.no_progress, _titles(prompt))
    listener.start(len(validation.order))
    interrupt = InterruptFlag()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        if interrupt.is_set():
            raise KeyboardInterrupt
        interrupt.set()
        print("\ninterrupting after the current step (Ctrl-C again to abort)", file=err)

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not in the main thread (embedded use): no Ctrl-C handling
        previous = None
    try:
        outcome = runtime.executor.execute(prompt, uuid.uuid4().hex, listener,
                                           extra_data={"extra_pnginfo": loaded.extra_pnginfo()},
                                           outputs=validation.good_outputs, interrupt=interrupt)
    except KeyboardInterrupt:
        listener.close()
        print("aborted", file=err)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    listener.close()
    code = _report(outcome, runtime, None if args.json else out, err, args.verbose)
    if args.json:
        summary = {"status": outcome.status, "exit_code": code, "prompt_id": outcome.prompt_id,
                   "files": [str(path) for _, path, _ in written_files(outcome, runtime)],
                   "outputs": outcome.outputs, "run_report": outcome.run_report, "error": outcome.error,
                   "node_errors": outcome.node_errors}
        print(json.dumps(summary, default=str), file=out)
    return code


def _report(outcome: Any, runtime: Any, out: TextIO | None, err: TextIO, verbose: bool) -> int:
    for node_id, path, cached in written_files(outcome, runtime) if out is not None else ():
        suffix = "  (an identical output node wrote it; not written twice)" if cached else ""
        print(f"{path}{suffix}", file=out)
    if outcome.status == "success":
        ran = sum(1 for r in outcome.run_report.values() if r["state"] == "ran")
        cached = sum(1 for r in outcome.run_report.values() if r["state"] == "cached")
        print(f"done: {ran} node(s) ran, {cached} cached", file=err)
        return EXIT_OK
    error = outcome.error or {}
    if outcome.status == "interrupted":
        print(f"interrupted at node {error.get('node_id')} ({error.get('node_type')})", file=err)
        return EXIT_INTERRUPTED
    if error.get("exception_type") == "ValidationError" or "node_errors" in error:
        print(f"error: {error.get('message')}: {error.get('details', '')}", file=err)
        return EXIT_INVALID
    print(f"error: node {error.get('node_id')} ({error.get('node_type')}) failed: "
          f"{error.get('exception_type')}: {error.get('exception_message')}", file=err)
    if verbose:
        print("".join(error.get("traceback") or []), file=err)
    return EXIT_NODE_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
