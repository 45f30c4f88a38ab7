"""The compiled request path: when a build is used, that the build works, and that a
new user's first ``./run.sh`` makes one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from server import native

REPO = Path(__file__).resolve().parents[2]
NATIVE = native.default_build_dir(str(REPO))
HAS_CC = shutil.which(sysconfig.get_config_var("CC").split()[0]) is not None


def fake_checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    for module in native.NATIVE_MODULES:
        path = Path(native.source_path(module, str(checkout)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"X = {module!r}\n")
    return checkout


def fake_build(tmp_path: Path, stamp: str) -> Path:
    build = tmp_path / "build"
    build.mkdir()
    (build / "STAMP").write_text(stamp + "\n")
    return build


def test_a_build_of_the_current_sources_is_used(tmp_path: Path) -> None:
    checkout = fake_checkout(tmp_path)
    build = fake_build(tmp_path, native.sources_stamp(str(checkout)))
    assert native.unusable(str(build), str(checkout)) is None


@pytest.mark.parametrize("module", native.NATIVE_MODULES)
def test_a_build_of_older_sources_is_not_used(tmp_path: Path, module: str) -> None:
    checkout = fake_checkout(tmp_path)
    build = fake_build(tmp_path, native.sources_stamp(str(checkout)))
    Path(native.source_path(module, str(checkout))).write_text("X = 'edited'\n")
    why = native.unusable(str(build), str(checkout))
    assert why is not None and "changed" in why


def test_no_build_means_interpreted(tmp_path: Path) -> None:
    checkout = fake_checkout(tmp_path)
    why = native.unusable(str(tmp_path / "absent"), str(checkout))
    assert why is not None and "not built" in why


def selected_in_a_fresh_python(env: dict[str, str], code: str = "") -> list[str]:
    """What ``python -m server`` chooses with ``env``, and where ``server.pipeline`` and
    ``server.http.protocol`` then load from, in a fresh interpreter."""
    probe = ("import os; from server import native; from server.config import parse_args;"
             "c = parse_args([], os.environ); print(native.select(c.native, c.native_build));"
             "import server.pipeline as p, server.http.protocol as h;"
             "print(p.__file__); print(h.__file__);" + code)
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env={**os.environ, **env},
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_walkv_native_0_runs_the_python_sources() -> None:
    chosen, pipeline, protocol = selected_in_a_fresh_python({"WALKV_NATIVE": "0"})
    assert chosen == "interpreted: WALKV_NATIVE=0"
    assert pipeline == str(REPO / "server" / "pipeline.py")
    assert protocol == str(REPO / "server" / "http" / "protocol.py")


def test_the_choice_must_come_before_the_request_path_is_imported() -> None:
    probe = ("import server.pipeline; from server import native\n"
             "try:\n    native.select(True)\nexcept RuntimeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert "native.select() must run before server." in out.stdout


@pytest.mark.skipif(native.unusable(NATIVE) is not None,
                    reason="no current build in .venv (./test.sh makes one where a C "
                           "compiler exists)")
def test_the_set_up_build_is_what_runs() -> None:
    chosen, pipeline, protocol = selected_in_a_fresh_python({"WALKV_NATIVE": "1"})
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert chosen == native.COMPILED
    for path in (pipeline, protocol):
        assert path.startswith(NATIVE) and path.endswith(suffix)


@pytest.mark.skipif(not HAS_CC, reason="no C compiler")
def test_tools_native_builds_a_usable_request_path(tmp_path: Path) -> None:
    build = tmp_path / "native"
    done = subprocess.run([sys.executable, str(REPO / "tools" / "native.py"),
                           "--build-dir", str(build)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, (tmp_path / "native.log").read_text()
    assert native.unusable(str(build)) is None
    # The build answers GETs and PUTs through the compiled codec, router, pipeline and
    # protocol (the feeder tools/request_cost.py measures).
    probe = ("import sys; sys.path.insert(0, 'tools'); import request_cost as rc;"
             "print(rc.run_inprocess('get-walkv', 10), rc.run_inprocess('put-walkv', 16));"
             "print(rc.request_path())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=False,
                         env={**os.environ, "WALKV_NATIVE": "1", "WALKV_NATIVE_DIR": str(build)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["10 16", native.COMPILED]


def as_a_new_clone(dst: Path) -> Path:
    """The checkout's files as ``git clone`` gives them (tracked and new files, nothing
    ignored: no .venv, no build), with any uncommitted edits."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)
    return dst


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CC, reason="no C compiler")
@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to list the checkout")
def test_the_first_run_sh_of_a_new_clone_starts_compiled(tmp_path: Path) -> None:
    clone = as_a_new_clone(tmp_path / "walkv")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WALKV_", "VIRTUAL_ENV", "PYTHON"))}
    proc = subprocess.Popen([str(clone / "run.sh"), "--port", "0", "--working-dir", "./data"],
                            cwd=clone, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 600  # a venv, the dependencies, then mypyc
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if "listening on http://" in line or time.monotonic() > deadline:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    log = "\n".join(lines)
    server_lines = [line for line in lines if " walkv INFO " in line]
    assert server_lines, log
    assert "request path compiled (mypyc)" in server_lines[0], log
    assert proc.returncode == 0, log
    assert native.unusable(str(clone / ".venv" / "walkv-native"), str(clone)) is None
