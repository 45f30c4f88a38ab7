"""Fixtures that run the real server (``<repo>/run.sh``) as the lsfr harness does.

Every server is started through ``ServerProcess`` with cwd = the project directory
and a *relative* ``--working-dir`` that points into pytest's tmp directory, so nothing
is written into the checkout. Servers are SIGKILLed at teardown whatever happened,
and a failing test's report ends with each server's stderr.

``WALKV_TARGET=/some/dir`` runs the suite against another directory holding a
``run.sh`` (used to check the harness itself against a stand-in server).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.burst import raise_nofile_limit
from harness.errors import ServerStartError
from harness.proc import ServerProcess, bootstrap_target

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("WALKV_TARGET", REPO)).resolve()

ServerFactory = Callable[..., ServerProcess]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    """Keep each phase's report on the item, so teardown knows if the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def target() -> Path:
    """The project directory holding ``run.sh``, bootstrapped once per session.

    ``run.sh`` installs the virtualenv on first use; doing it here keeps that one-off
    install out of the 15 s readiness budget of the first test's start.
    """
    try:
        bootstrap_target(TARGET)
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    raise_nofile_limit()  # bursts hold thousands of client sockets at once
    return TARGET


@pytest.fixture
def make_server(
    target: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ServerFactory]:
    """Factory for servers (not yet started) on fresh or given working directories.

    ``make_server(working_dir=None, **kwargs)``: ``working_dir`` defaults to
    ``<tmp>/data``; it is passed relative to the project directory. Other keyword
    arguments go to ServerProcess (``port``, ``extra_args``, ``name``...).
    """
    servers: list[ServerProcess] = []

    def make(working_dir: Path | None = None, **kwargs: Any) -> ServerProcess:
        directory = working_dir if working_dir is not None else tmp_path / "data"
        kwargs.setdefault("name", f"server{len(servers) + 1}")
        server = ServerProcess(
            target,
            os.path.relpath(directory, target),
            log_dir=tmp_path / "logs",
            **kwargs,
        )
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()
        if _failed(request.node):
            _print_server_logs(servers)


@pytest.fixture
def server(make_server: ServerFactory) -> ServerProcess:
    """A started server on a fresh working directory."""
    started = make_server()
    started.start()
    return started


def _failed(node: pytest.Item) -> bool:
    return any(
        getattr(getattr(node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


def _print_server_logs(servers: list[ServerProcess], tail: int = 40) -> None:
    # Printed during teardown: pytest shows it under "Captured stdout teardown".
    for server in servers:
        lines = server.stderr_text().splitlines()[-tail:]
        print(f"--- {server.name} (start #{server.starts}) stderr, {server.stderr_path}")
        print("\n".join(lines) or "<empty>")
