"""openapi.yaml is kept true: every status it documents for every operation is produced
by the server (``./run.sh``; disk failures by the real server code over the faulty
filesystem), and schemathesis fuzzing the server with it finds no 5xx and no crash."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.client import Response, kv_path, request_once
from harness.proc import ServerProcess
from tests.inprocess import FILL_ALLOCATION, Running, inprocess_server

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
MAX_VALUE = 1024
"""--max-value-bytes of the server the scenarios run against (so 413 is cheap)."""

Case = tuple[str, str, int]
"""(documented path, method, status)."""
ServerFactory = Callable[..., ServerProcess]
Scenario = Callable[[int], Awaitable[Response]]


def documented() -> set[Case]:
    """Every (path, method, status) the spec lists."""
    cases = set()
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                cases.update((path, method.upper(), int(s)) for s in operation["responses"])
    return cases


def response_spec(case: Case) -> dict[str, Any]:
    path, method, status = case
    spec = SPEC["paths"][path][method.lower()]["responses"][str(status)]
    if "$ref" in spec:
        spec = SPEC["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
    return dict(spec)


def assert_as_documented(case: Case, response: Response) -> None:
    """Status, media type and (where the spec enumerates them) the exact body."""
    assert response.status == case[2], (case, response)
    content = response_spec(case).get("content")
    if content is None:
        assert response.body == b"", (case, response)
        return
    [(media_type, body_spec)] = content.items()
    assert (response.header("content-type") or "").split(";")[0] == media_type, (case, response)
    enum = body_spec.get("schema", {}).get("enum")
    if enum is not None:
        assert response.text in enum, (case, response)


# -- scenarios on the real server -----------------------------------------------------


def call(method: str, path: str, body: bytes = b"") -> Scenario:
    async def run(port: int) -> Response:
        return await request_once("127.0.0.1", port, method, path, body)

    return run


def then(first: Scenario, second: Scenario) -> Scenario:
    async def run(port: int) -> Response:
        await first(port)
        return await second(port)

    return run


KV = "/kv/{key}"
REAL: dict[Case, Scenario] = {
    (KV, "GET", 200): then(call("PUT", kv_path("spec-get"), b"v"),
                           call("GET", kv_path("spec-get"))),
    (KV, "GET", 400): call("GET", "/kv/"),
    (KV, "GET", 404): call("GET", kv_path("spec-never-written")),
    (KV, "PUT", 200): call("PUT", kv_path("spec-put"), b"value"),
    (KV, "PUT", 400): call("PUT", kv_path("spec-put"), b""),
    (KV, "PUT", 413): call("PUT", kv_path("spec-big"), b"x" * (MAX_VALUE + 1)),
    (KV, "DELETE", 200): call("DELETE", kv_path("spec-put")),
    (KV, "DELETE", 400): call("DELETE", "/kv/"),
    ("/clear", "DELETE", 200): call("DELETE", "/clear"),
    ("/metrics", "GET", 200): call("GET", "/metrics"),
    ("/stats", "GET", 200): call("GET", "/stats"),
    ("/healthz", "GET", 200): call("GET", "/healthz"),
}

# Produced in order by test_storage_failure_statuses_are_as_documented.
FAULTS: set[Case] = {
    (KV, "PUT", 507), (KV, "DELETE", 507), ("/clear", "DELETE", 507),
    (KV, "PUT", 503), (KV, "DELETE", 503), ("/clear", "DELETE", 503),
    ("/healthz", "GET", 503),
}


def test_every_documented_status_has_a_scenario_and_no_other_does() -> None:
    assert set(REAL) | FAULTS == documented()
    assert not set(REAL) & FAULTS


@pytest.mark.parametrize("case", sorted(REAL), ids=lambda c: f"{c[1]} {c[0]} {c[2]}")
async def test_documented_status_is_produced_by_the_server(
        spec_server: ServerProcess, case: Case) -> None:
    assert_as_documented(case, await REAL[case](spec_server.port))


@pytest.fixture(scope="module")
def spec_server(target: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("openapi")
    with ServerProcess(target, tmp / "data", log_dir=tmp / "logs", name="spec",
                       extra_args=[f"--max-value-bytes={MAX_VALUE}"]) as server:
        server.start()
        yield server


async def test_storage_failure_statuses_are_as_documented() -> None:
    seen: set[Case] = set()

    async def expect(case: Case, method: str, path: str, running: Running,
                     body: bytes = b"") -> None:
        assert_as_documented(case, await call(method, path, body)(running.port))
        seen.add(case)

    async with inprocess_server() as running:
        await call("PUT", kv_path("filler"), FILL_ALLOCATION)(running.port)
        running.fill_disk()
        await expect((KV, "PUT", 507), "PUT", kv_path("a"), running, b"v")
        await expect((KV, "DELETE", 507), "DELETE", kv_path("filler"), running)
        await expect(("/clear", "DELETE", 507), "DELETE", "/clear", running)
        await expect(("/healthz", "GET", 503), "GET", "/healthz", running)
        running.fs.space_limit = None
        running.fs.fail_sync_at = 1
        await expect((KV, "PUT", 503), "PUT", kv_path("a"), running, b"v")
        await expect((KV, "DELETE", 503), "DELETE", kv_path("filler"), running)
        await expect(("/clear", "DELETE", 503), "DELETE", "/clear", running)
    assert seen == FAULTS


# -- fuzzing --------------------------------------------------------------------------


def test_schemathesis_finds_no_server_error_and_no_crash(
        make_server: ServerFactory, tmp_path: Path) -> None:
    """Short mode by default (~25 cases per operation, a few seconds); set
    WALKV_FUZZ_EXAMPLES=1000 for a long run."""
    server = make_server()
    server.start()
    examples = os.environ.get("WALKV_FUZZ_EXAMPLES", "25")
    argv = [sys.executable, "-m", "schemathesis.cli", "run", str(SPEC_PATH),
            "--url", server.base_url, "--checks", "all", "--max-examples", examples,
            "--workers", "2", "--request-timeout", "15"]
    # cwd: schemathesis keeps its example database there, never in the checkout.
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "NO_COLOR": "1"}, check=False)
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "No issues found" in done.stdout, report
    assert server.running, "the server died under fuzzing"
    assert server.stderr_text().count("Traceback") == 0, server.stderr_text()[-4000:]
