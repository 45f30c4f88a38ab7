"""openapi.yaml is kept true: every status it documents for every operation is produced
by the server (``./run.sh``; disk failures by the real server code over the faulty
filesystem), and schemathesis fuzzing the server with it finds no 5xx and no crash."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.client import Connection, Response, kv_path, request_once
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


def call(method: str, path: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> Scenario:
    async def run(port: int) -> Response:
        return await request_once("127.0.0.1", port, method, path, body, headers)

    return run


def txn(document: object) -> Scenario:
    return call("POST", "/txn", json.dumps(document).encode())


def then(first: Scenario, second: Scenario) -> Scenario:
    async def run(port: int) -> Response:
        await first(port)
        return await second(port)

    return run


KV = "/kv/{key}"
ABSENT = kv_path("spec-never-written")
REAL: dict[Case, Scenario] = {
    (KV, "GET", 200): then(call("PUT", kv_path("spec-get"), b"v"),
                           call("GET", kv_path("spec-get"))),
    (KV, "GET", 304): then(call("PUT", kv_path("spec-304"), b"v"),
                           call("GET", kv_path("spec-304"), headers={"If-None-Match": "*"})),
    (KV, "GET", 400): call("GET", "/kv/"),
    (KV, "GET", 404): call("GET", ABSENT),
    (KV, "GET", 412): call("GET", ABSENT, headers={"If-Match": "*"}),
    (KV, "PUT", 200): call("PUT", kv_path("spec-put"), b"value"),
    (KV, "PUT", 400): call("PUT", kv_path("spec-put"), b""),
    (KV, "PUT", 412): call("PUT", ABSENT, b"v", headers={"If-Match": "*"}),
    (KV, "PUT", 413): call("PUT", kv_path("spec-big"), b"x" * (MAX_VALUE + 1)),
    (KV, "DELETE", 200): call("DELETE", kv_path("spec-put")),
    (KV, "DELETE", 400): call("DELETE", "/kv/"),
    (KV, "DELETE", 412): call("DELETE", ABSENT, headers={"If-Match": "*"}),
    ("/kv", "GET", 200): then(call("PUT", kv_path("spec-list"), b"v"),
                              call("GET", "/kv?prefix=spec-&limit=2&values=true")),
    ("/kv", "GET", 400): call("GET", "/kv?limit=0"),
    ("/txn", "POST", 200): txn({"ops": [{"op": "incr", "key": "spec-n"}]}),
    ("/txn", "POST", 400): call("POST", "/txn", b"{"),
    ("/txn", "POST", 409): then(call("PUT", kv_path("spec-word"), b"word"),
                                txn({"ops": [{"op": "incr", "key": "spec-word"}]})),
    ("/txn", "POST", 412): txn({"compare": [{"key": "spec-never-written", "present": True}]}),
    ("/txn", "POST", 413): txn({"ops": [{"op": "get", "key": "k"}] * 129}),
    ("/clear", "DELETE", 200): call("DELETE", "/clear"),
    ("/metrics", "GET", 200): call("GET", "/metrics"),
    ("/stats", "GET", 200): call("GET", "/stats"),
    ("/healthz", "GET", 200): call("GET", "/healthz"),
}

# Produced in order by test_storage_failure_statuses_are_as_documented.
FAULTS: set[Case] = {
    (KV, "PUT", 507), (KV, "DELETE", 507), ("/clear", "DELETE", 507), ("/txn", "POST", 507),
    ("/kv", "GET", 507),
    (KV, "PUT", 503), (KV, "DELETE", 503), ("/clear", "DELETE", 503), ("/txn", "POST", 503),
    ("/kv", "GET", 503),
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

    put = json.dumps({"ops": [{"op": "put", "key": "a", "value": "v"}]}).encode()
    async with inprocess_server() as running:
        await call("PUT", kv_path("filler"), FILL_ALLOCATION)(running.port)
        running.fill_disk()
        await expect((KV, "PUT", 507), "PUT", kv_path("a"), running, b"v")
        await expect((KV, "DELETE", 507), "DELETE", kv_path("filler"), running)
        await expect(("/clear", "DELETE", 507), "DELETE", "/clear", running)
        await expect(("/txn", "POST", 507), "POST", "/txn", running, put)
        await expect(("/healthz", "GET", 503), "GET", "/healthz", running)
        # A listing shares the commit group of writes that arrive with it.
        _, listed = await together(running.port, ("PUT", kv_path("a"), b"v"), ("GET", "/kv", b""))
        assert_as_documented(("/kv", "GET", 507), listed)
        seen.add(("/kv", "GET", 507))
        running.fs.space_limit = None
        running.fs.fail_sync_at = 1
        await expect((KV, "PUT", 503), "PUT", kv_path("a"), running, b"v")
        await expect((KV, "DELETE", 503), "DELETE", kv_path("filler"), running)
        await expect(("/clear", "DELETE", 503), "DELETE", "/clear", running)
        await expect(("/txn", "POST", 503), "POST", "/txn", running, put)
        await expect(("/kv", "GET", 503), "GET", "/kv", running)
    assert seen == FAULTS


async def together(port: int, *requests: tuple[str, str, bytes]) -> list[Response]:
    """Requests sent on their own connections in one go, so that the server reads them
    in one event-loop iteration (this process runs the server, on this loop)."""
    connections = [await Connection.open("127.0.0.1", port) for _ in requests]
    try:
        sent = [conn.send(method, path, body) for conn, (method, path, body)
                in zip(connections, requests, strict=True)]
        return list(await asyncio.gather(*sent))
    finally:
        for conn in connections:
            await conn.close()


# -- fuzzing --------------------------------------------------------------------------

SCHEMATHESIS_CONFIG = """
# A request valid by the schema may still be answered 412 (its precondition does not
# hold for the value stored: the answer RFC 9110 prescribes) or 413 (a transaction's
# compare and ops lists are each within the schema, but together over 128, a sum no
# schema can cap). Both are in addition to schemathesis's defaults.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "413", "429", "5xx"]

# Likewise a transaction list over its maxItems is refused as too large (413), not 400.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                     "428", "429", "5xx"]

# A fuzzed GET names a key nobody wrote (404) with an If-Match no value has (412), so the
# heuristics that read "only 4xx" as missing test data or a stricter server than schema
# say nothing here; every other warning stays on.
[[operations]]
include-path = "/kv/{key}"
include-method = "GET"
warnings = ["missing_auth", "base_url_mismatch", "missing_deserializer", "unused_openapi_auth",
            "unsupported_regex", "method_not_allowed", "constants_extraction", "unmatched_filter",
            "unresolvable_reference", "rate_limited", "dictionary_mismatch", "timeout_units"]
"""


def test_schemathesis_finds_no_server_error_and_no_crash(
        make_server: ServerFactory, tmp_path: Path) -> None:
    """Short mode by default (~25 cases per operation, a few seconds); set
    WALKV_FUZZ_EXAMPLES=1000 for a long run."""
    server = make_server()
    server.start()
    examples = os.environ.get("WALKV_FUZZ_EXAMPLES", "25")
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    # One worker: with two threads, hypothesis describing a filter now and then runs
    # ast.parse in both at once, and CPython 3.11 fails that with "AST constructor
    # recursion depth mismatch" (python/cpython#106905), a runtime error of the fuzzer.
    argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            str(SPEC_PATH), "--url", server.base_url, "--checks", "all",
            "--max-examples", examples, "--workers", "1", "--request-timeout", "15"]
    # cwd: schemathesis keeps its example database there, never in the checkout.
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "NO_COLOR": "1"}, check=False)
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert "No issues found" in done.stdout, report
    assert server.running, "the server died under fuzzing"
    assert server.stderr_text().count("Traceback") == 0, server.stderr_text()[-4000:]
