"""Command-line parsing: both flag spellings, sizes, and one-line errors."""

from __future__ import annotations

import pytest

import server.__main__
import server.app
from server.config import Config, parse_args
from storage import CheckpointMode, RecoveryMode


def test_defaults_are_the_safe_durable_choices() -> None:
    config = parse_args([])
    assert config == Config()
    assert config.host == "127.0.0.1"
    assert not config.unsafe_no_fsync
    assert config.recovery is RecoveryMode.STRICT
    assert config.engine_options().fsync


def test_space_and_equals_forms_are_the_same() -> None:
    spaced = parse_args(["--port", "8080", "--working-dir", "./d", "--recovery", "point-in-time"])
    joined = parse_args(["--port=8080", "--working-dir=./d", "--recovery=point-in-time"])
    assert spaced == joined
    assert spaced.port == 8080 and spaced.working_dir == "./d"
    assert spaced.recovery is RecoveryMode.POINT_IN_TIME


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1024", 1024), ("4K", 4096), ("64M", 64 << 20), ("1g", 1 << 30), ("2MiB", 2 << 20)],
)
def test_sizes_accept_binary_suffixes(text: str, expected: int) -> None:
    assert parse_args([f"--max-value-bytes={text}"]).max_value_bytes == expected


def test_unsafe_flag_turns_fsync_off_only_when_given() -> None:
    config = parse_args(["--unsafe-no-fsync", "--checkpoint-mode=thread"])
    assert not config.engine_options().fsync
    assert config.engine_options().checkpoint_mode is CheckpointMode.THREAD


def test_the_environment_chooses_the_build_of_the_request_path() -> None:
    assert parse_args([]).native and parse_args([], {}).native_build is None
    assert not parse_args([], {"WALKV_NATIVE": "0"}).native
    assert parse_args([], {"WALKV_NATIVE": "1"}).native
    assert parse_args([], {"WALKV_NATIVE_DIR": "/b"}).native_build == "/b"
    assert parse_args([], {"WALKV_NATIVE_DIR": ""}).native_build is None


def test_log_format_is_text_unless_json_is_asked_for() -> None:
    assert parse_args([]).log_format == "text"
    assert parse_args(["--log-format", "json"]).log_format == "json"


@pytest.mark.parametrize(
    "argv",
    [
        ["--no-such-flag"],
        ["--port=abc"],
        ["--port=70000"],
        ["--max-value-bytes=lots"],
        ["--idle-timeout=0"],
        ["--recovery=sometimes"],
        ["--segment-bytes=100"],
        ["--log-format=xml"],
    ],
)
def test_bad_flags_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("walkv: error: ")


def test_unexpected_error_ends_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(config: Config, request_path: str) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(server.app, "run", broken)
    assert server.__main__.main(["--port=0"]) == 70
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("walkv: error: stopped by an unexpected RuntimeError: boom")
