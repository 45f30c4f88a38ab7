"""The compiled request path: when a build is used, and that the build works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import server

REPO = Path(__file__).resolve().parents[2]
NATIVE = server.native_dir(str(REPO))


def fake_package(tmp_path: Path) -> Path:
    package = tmp_path / "server"
    package.mkdir()
    for name in server.NATIVE_MODULES:
        (package / f"{name}.py").write_text(f"X = {name!r}\n")
    return package


def fake_build(tmp_path: Path, stamp: str) -> Path:
    build = tmp_path / "build"
    build.mkdir()
    (build / "STAMP").write_text(stamp + "\n")
    return build


def test_a_build_of_the_current_sources_is_used(tmp_path: Path) -> None:
    package = fake_package(tmp_path)
    build = fake_build(tmp_path, server.sources_stamp(str(package)))
    assert server.choose_native(str(build), str(package), env={}) is None


def test_a_build_of_older_sources_is_not_used(tmp_path: Path) -> None:
    package = fake_package(tmp_path)
    build = fake_build(tmp_path, server.sources_stamp(str(package)))
    (package / "router.py").write_text("X = 'edited'\n")
    why = server.choose_native(str(build), str(package), env={})
    assert why is not None and "changed" in why


def test_no_build_means_interpreted(tmp_path: Path) -> None:
    package = fake_package(tmp_path)
    why = server.choose_native(str(tmp_path / "absent"), str(package), env={})
    assert why is not None and "not built" in why


def test_walkv_native_0_turns_a_good_build_off(tmp_path: Path) -> None:
    package = fake_package(tmp_path)
    build = fake_build(tmp_path, server.sources_stamp(str(package)))
    assert server.choose_native(str(build), str(package),
                                env={"WALKV_NATIVE": "0"}) == "WALKV_NATIVE=0"


def imported_from(env: dict[str, str]) -> tuple[str, str]:
    """``server.native`` and where ``server.connection`` came from, in a fresh Python."""
    out = subprocess.run(
        [sys.executable, "-c",
         "import server, server.connection as c; print(server.native); print(c.__file__)"],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    native, path = out.stdout.splitlines()
    return native, path


def test_walkv_native_0_runs_the_python_sources() -> None:
    native, path = imported_from({"WALKV_NATIVE": "0"})
    assert native == "interpreted: WALKV_NATIVE=0"
    assert path == str(REPO / "server" / "connection.py")


@pytest.mark.skipif(server.choose_native(NATIVE, env={}) is not None,
                    reason="no current build in .venv (./test.sh makes one where a C "
                           "compiler exists)")
def test_the_set_up_build_is_what_runs() -> None:
    native, path = imported_from({"WALKV_NATIVE": "1"})
    assert native == "compiled (mypyc)"
    assert path.startswith(NATIVE) and path.endswith(sysconfig.get_config_var("EXT_SUFFIX"))


@pytest.mark.skipif(shutil.which(sysconfig.get_config_var("CC").split()[0]) is None,
                    reason="no C compiler")
def test_tools_native_builds_a_usable_request_path(tmp_path: Path) -> None:
    build = tmp_path / "native"
    done = subprocess.run([sys.executable, str(REPO / "tools" / "native.py"),
                           "--build-dir", str(build)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, (tmp_path / "native.log").read_text()
    assert server.choose_native(str(build), env={}) is None
    # The build answers a GET and a PUT through the compiled codec, router and
    # connection (the feeder tools/request_cost.py measures).
    probe = ("import sys; sys.path.insert(0, 'tools'); import server, request_cost as rc;"
             "print(server.native);"
             "print(rc.run_inprocess('get-walkv', 10), rc.run_inprocess('put-walkv', 16))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=False,
                         env={**os.environ, "WALKV_NATIVE": "1", "WALKV_NATIVE_DIR": str(build)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["compiled (mypyc)", "10 16"]
