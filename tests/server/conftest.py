"""Fixtures: one real server per test module on a loopback port, over a temporary base dir."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from server.context import ServerConfig
from tests.server.harness import ServerThread, make_runtime


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lgserver")


@pytest.fixture(scope="module")
def server(base_dir: Path) -> Iterator[ServerThread]:
    with ServerThread(make_runtime(base_dir), ServerConfig(port=0, web_root=base_dir / "no-editor")) as running:
        yield running
