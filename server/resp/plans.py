"""What a parsed Redis command asks the connection to do: one of a few small plans.

A command handler (``server/resp/commands.py``) checks the arguments the way Redis
does and returns a plan; the connection (``server/resp/protocol.py``) runs it through
the shared pipeline, or queues it inside MULTI. Every plan that touches the store
can run both ways: alone, and as part of one EXEC transaction.

- ``Now``: the reply is known already (an argument error, PING, ECHO).
- ``Lookup``: a read of one key, rendered from its value and deadline. Alone, it reads
  the committed table on the event loop; inside EXEC it is an ``Inspect`` step.
- ``Change``: a transaction the committer evaluates in commit order (every write, and
  multi-key reads that must be atomic); rendered from its ``TxnResult``. Inside EXEC it
  is a nested transaction.
- ``Listing``: one page of keys in order (SCAN); not allowed inside MULTI.
- ``Compute``: a read of the whole committed keyspace on the event loop (KEYS, DBSIZE,
  RANDOMKEY, INFO); inside EXEC it runs when the EXEC reply is made.
- ``Fast``: GET and plain SET, run through the pipeline's own ``Get``/``Put`` with
  answers encoded in advance (the common case; ``server/resp/replies.py``).
- ``Session``: a change to the connection's own state (HELLO, MULTI, EXEC, WATCH...),
  handled by the connection itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from server.commands import Clear, Get, Put
from storage import Page, Scan, Txn, TxnResult


@dataclass(slots=True, frozen=True)
class Now:
    reply: bytes
    error: bool = False
    """The reply is an error (counted; inside MULTI, see ``aborts``)."""
    aborts: bool = False
    """Inside MULTI, this error discards the transaction (Redis's EXECABORT): an unknown
    command or a wrong number of arguments, found when the command is queued."""


@dataclass(slots=True, frozen=True)
class Lookup:
    key: bytes
    render: Callable[[bytes | None, int | None, int], bytes]
    """(value or None, deadline or None, now in ms) -> reply."""


@dataclass(slots=True, frozen=True)
class Change:
    txn: Txn
    render: Callable[[TxnResult], bytes]


@dataclass(slots=True, frozen=True)
class Listing:
    scan: Scan
    render: Callable[[Page], bytes]


@dataclass(slots=True, frozen=True)
class Compute:
    read: Callable[[], bytes]


@dataclass(slots=True, frozen=True)
class Fast:
    command: Get | Put | Clear


@dataclass(slots=True, frozen=True)
class Session:
    name: str
    """The connection-level command, lower case (``hello``, ``multi``, ``exec``...)."""
    args: list[bytes]


Plan: TypeAlias = Now | Lookup | Change | Listing | Compute | Fast | Session
