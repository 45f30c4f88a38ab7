"""What a request asks for, whatever protocol carried it: small typed classes.

A protocol's parser or router turns each request into one of these, or answers it
itself when the store is not involved (a malformed request, a wrong method). The
pipeline (``server/pipeline.py``) runs the store commands and dispatches on their
class, never on strings; how the outcome is put into words is the protocol's.

`Get`, `Put` and `Delete` are built once per request, so they are plain slots
dataclasses (frozen ones cost twice as much to construct); treat them as immutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeAlias

from storage import Scan, Txn


@dataclass(slots=True)
class Get:
    """Read the value stored under `key`."""

    key: bytes


@dataclass(slots=True)
class Put:
    """Store `value` (non-empty) under `key` (non-empty), replacing any old value."""

    key: bytes
    value: bytes


@dataclass(slots=True)
class Delete:
    """Remove `key`; succeeds whether or not it exists."""

    key: bytes


@dataclass(slots=True, frozen=True)
class Clear:
    """Remove every key."""


@dataclass(slots=True, frozen=True)
class Evaluate:
    """Run a transaction or a scan in commit order (``storage.ops``); its answer is
    rendered from the result by the protocol's ``Answers.render``."""

    operation: Txn | Scan


Command: TypeAlias = Get | Put | Delete | Clear | Evaluate
"""A command that reads or writes the store."""

CLEAR: Final = Clear()


class Report(Enum):
    """What the server can report about itself (``server/introspection.py``)."""

    METRICS = "metrics"
    """Every counter, in the Prometheus text format."""
    STATS = "stats"
    """The same counters as JSON, plus the last recovery report."""
    HEALTH = "health"
    """Whether a write could succeed now, and if not, why."""


@dataclass(slots=True, frozen=True)
class Introspect:
    """Report on the server itself; answered from live counters, never cached."""

    report: Report
