"""Compile walkv's request path with mypyc (run.sh and test.sh run this at set-up).

    .venv/bin/python tools/native.py      # builds .venv/walkv-native/ unless up to date

The modules in ``server.native.NATIVE_MODULES`` are ordinary, strictly typed Python;
mypyc turns them into C extension modules that do the same work in about half the
instructions (``tools/request_cost.py`` counts them). ``server.native.select`` uses
the build only while its stamp matches the sources, so an edited file is never
shadowed by an old build.

The build goes to a temporary directory and replaces the old one whole. Exit status 0
when the build is up to date or was made; 1 when it could not be made (the server
then runs interpreted, with the same behaviour); the compiler's output is kept in
``.venv/walkv-native.log``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from server import native  # noqa: E402 - needs ROOT on sys.path when run as a script


def up_to_date(build: str) -> bool:
    """Whether ``build`` holds a build of the current sources."""
    return native.unusable(build, ROOT) is None


def build_into(build: str) -> None:
    """Compile ``native.NATIVE_MODULES`` into ``build`` (replaced whole on success)."""
    from mypyc.build import mypycify  # noqa: PLC0415 - only needed when building
    from setuptools import Distribution  # noqa: PLC0415

    parent = os.path.dirname(build)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".walkv-native-", dir=parent)
    try:
        stamp = native.sources_stamp(ROOT)
        out = os.path.join(work, "out")
        # mypyc names modules by their paths relative to the working directory, which
        # main() makes the checkout's root.
        paths = [os.path.relpath(native.source_path(m, ROOT), ROOT)
                 for m in native.NATIVE_MODULES]
        extensions = mypycify(paths, opt_level="3", target_dir=os.path.join(work, "c"),
                              group_name=native.NATIVE_GROUP)
        dist = Distribution({"name": "walkv-native", "ext_modules": extensions})
        build_ext = dist.get_command_obj("build_ext")
        build_ext.build_lib = out
        build_ext.build_temp = os.path.join(work, "tmp")
        build_ext.parallel = 2
        dist.run_command("build_ext")
        # The stamp is of the sources read before compiling: an edit made during the
        # build leaves a stamp that no longer matches, so that build is never used.
        with open(os.path.join(out, "STAMP"), "w", encoding="ascii") as f:
            f.write(stamp + "\n")
        old = build + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(build):
            os.rename(build, old)
        os.rename(out, build)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Build unless up to date; one line on stderr says what happened."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = os.environ.get("WALKV_NATIVE_DIR") or native.default_build_dir(ROOT)
    parser.add_argument("--build-dir", default=default,
                        help="where the build goes (default: $WALKV_NATIVE_DIR, else "
                             ".venv/walkv-native)")
    parser.add_argument("--compile", action="store_true",
                        help="build now from the checkout's root, output to stdout (what "
                             "the default runs, logged)")
    args = parser.parse_args(argv)
    build = os.path.abspath(args.build_dir)
    if args.compile:
        build_into(build)
        return 0
    if up_to_date(build):
        return 0
    log_path = build + ".log"
    os.makedirs(os.path.dirname(build), exist_ok=True)
    print("walkv: compiling the request path with mypyc (about 20 s)...", file=sys.stderr)
    with open(log_path, "w", encoding="utf-8") as log:
        # A child process, so that the compiler's own output goes to the log too.
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--compile",
                               "--build-dir", build], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not up_to_date(build):
        shutil.rmtree(build, ignore_errors=True)
        print(f"walkv: warning: could not compile the request path (exit status "
              f"{done.returncode}); walkv runs interpreted, slower but the same. "
              f"Details: {log_path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
