"""Connection and server commands: PING, ECHO, HELLO, AUTH, SELECT, CLIENT, COMMAND,
CONFIG, INFO, TIME, WAIT, WAITAOF, UNWATCH. Each returns its whole reply; none touches
the store. Their arguments are checked as Redis 7 checks them.

What walkv reports is true of walkv: ``CONFIG GET appendfsync`` is ``always`` because
every write is fsynced before its reply, ``WAITAOF`` answers at once that the write is
on the local disk and on no replica, and INFO's numbers are the server's own.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import resource
from collections.abc import Sequence
from typing import Final, Protocol

from server.introspection import walkv_version
from server.resp.codec import (
    OK,
    PONG,
    array,
    bulk,
    error,
    integer,
    map_reply,
    null,
    set_reply,
    simple,
    verbatim,
)
from server.resp.commands import TABLE, Command, Context, now_seconds, parse_int
from server.resp.service import RespService


class RespConnection(Context, Protocol):
    """What these commands know of their connection (``server.resp.protocol``)."""

    service: RespService
    client_id: int
    name: bytes
    lib_name: bytes
    lib_ver: bytes

    def describe(self) -> bytes: ...

REDIS_VERSION: Final = "7.0.0"
"""The Redis version whose commands and replies walkv follows (HELLO, INFO)."""
NOT_INTEGER: Final = error("ERR value is not an integer or out of range")
SYNTAX: Final = error("ERR syntax error")


def reply(conn: RespConnection, name: str, args: list[bytes]) -> bytes:
    """The reply to connection/server command ``name``."""
    if name == "ping":
        if len(args) > 2:
            return _arity("ping")
        return PONG if len(args) == 1 else bulk(args[1])
    if name == "echo":
        return bulk(args[1])
    if name == "select":
        index = parse_int(args[1])
        if index is None:
            return NOT_INTEGER
        return OK if index == 0 else error("ERR DB index is out of range")
    if name == "unwatch":  # inside EXEC: the watch ends with the EXEC anyway
        return OK
    if name == "time":
        seconds, micros = now_seconds()
        return array([bulk(b"%d" % seconds), bulk(b"%d" % micros)])
    handler = _HANDLERS.get(name)
    if handler is None:
        return error(f"ERR unknown command '{name}'")
    return handler(conn, args)


def _arity(name: str) -> bytes:
    return error(f"ERR wrong number of arguments for '{name}' command")


# -- HELLO and AUTH --------------------------------------------------------------------
def hello(conn: RespConnection, args: list[bytes]) -> bytes:
    resp3 = conn.resp3
    if len(args) >= 2:
        version = parse_int(args[1])
        if version is None:
            return error("ERR Protocol version is not an integer or out of range")
        if not 2 <= version <= 3:
            return error("NOPROTO unsupported protocol version")
        resp3 = version == 3
    name: bytes | None = None
    i = 2
    while i < len(args):
        option = args[i].upper()
        if option == b"AUTH" and i + 2 < len(args):
            failed = _authenticate(args[i + 1], args[i + 2])
            if failed is not None:
                return failed
            i += 3
        elif option == b"SETNAME" and i + 1 < len(args):
            name = args[i + 1]
            if not _valid_name(name):
                return _BAD_NAME
            i += 2
        else:
            return error(f"ERR Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'")
    conn.resp3 = resp3
    if name is not None:
        conn.name = name
    return map_reply([
        (bulk(b"server"), bulk(b"walkv")),
        (bulk(b"version"), bulk(REDIS_VERSION.encode())),
        (bulk(b"proto"), integer(3 if resp3 else 2)),
        (bulk(b"id"), integer(conn.client_id)),
        (bulk(b"mode"), bulk(b"standalone")),
        (bulk(b"role"), bulk(b"master")),
        (bulk(b"modules"), array([])),
    ], resp3)


def _authenticate(user: bytes, password: bytes) -> bytes | None:
    """Without an auth file the default user needs no password, as in Redis."""
    del password
    if user == b"default":
        return None
    return error("WRONGPASS invalid username-password pair or user is disabled.")


def auth(conn: RespConnection, args: list[bytes]) -> bytes:
    if len(args) == 2:
        return error("ERR AUTH <password> called without any password configured for the "
                     "default user. Are you sure your configuration is correct?")
    if len(args) == 3:
        return _authenticate(args[1], args[2]) or OK
    return SYNTAX


# -- CLIENT ------------------------------------------------------------------------------
_BAD_NAME: Final = error("ERR Client names cannot contain spaces, newlines or special "
                         "characters.")


def _valid_name(name: bytes) -> bool:
    return all(33 <= c <= 126 for c in name)


def client(conn: RespConnection, args: list[bytes]) -> bytes:
    sub = args[1].lower()
    count = len(args)
    if sub == b"setname":
        if count != 3:
            return _arity("client|setname")
        if not _valid_name(args[2]):
            return _BAD_NAME
        conn.name = args[2]
        return OK
    if sub == b"getname":
        if count != 2:
            return _arity("client|getname")
        return bulk(conn.name) if conn.name else null(conn.resp3)
    if sub == b"id":
        return integer(conn.client_id) if count == 2 else _arity("client|id")
    if sub == b"info":
        return verbatim(conn.describe(), conn.resp3) if count == 2 else _arity("client|info")
    if sub == b"list":
        return verbatim(b"".join(c.describe() for c in conn.service.open), conn.resp3)
    if sub == b"setinfo":
        if count != 4:
            return _arity("client|setinfo")
        attribute, value = args[2].lower(), args[3]
        if attribute not in (b"lib-name", b"lib-ver"):
            return error(f"ERR Unrecognized option '{args[2].decode('utf-8', 'replace')}'")
        if not all(33 <= c <= 126 for c in value):
            return error(f"ERR {attribute.decode()} cannot contain spaces, newlines or "
                         "special characters.")
        if attribute == b"lib-name":
            conn.lib_name = value
        else:
            conn.lib_ver = value
        return OK
    if sub in (b"no-evict", b"no-touch") and count == 3:
        return OK if args[2].lower() in (b"on", b"off") else SYNTAX
    return error(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                 "Try CLIENT HELP.")


# -- COMMAND -----------------------------------------------------------------------------
def command(conn: RespConnection, args: list[bytes]) -> bytes:
    if len(args) == 1:
        return array([_info(c, conn.resp3) for c in TABLE.values()])
    sub = args[1].lower()
    if sub == b"count":
        return integer(len(TABLE))
    if sub == b"list":
        return array([bulk(name) for name in TABLE])
    if sub == b"info":
        wanted = args[2:] or list(TABLE)
        return array([_info(TABLE[n.lower()], conn.resp3) if n.lower() in TABLE
                      else null(conn.resp3) for n in wanted])
    if sub == b"docs":
        wanted = args[2:] or list(TABLE)
        return map_reply([(bulk(TABLE[n.lower()].name.encode()), _docs(TABLE[n.lower()],
                                                                         conn.resp3))
                          for n in wanted if n.lower() in TABLE], conn.resp3)
    return error(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                 "Try COMMAND HELP.")


def _info(spec: Command, resp3: bool) -> bytes:
    return array([bulk(spec.name.encode()), integer(spec.arity),
                  set_reply([simple(f) for f in spec.flags], resp3),
                  integer(spec.first_key), integer(spec.last_key), integer(spec.step),
                  set_reply([simple(f"@{spec.group}")], resp3), array([]), array([]),
                  array([])])


def _docs(spec: Command, resp3: bool) -> bytes:
    return map_reply([(bulk(b"summary"), bulk(spec.summary.encode())),
                      (bulk(b"since"), bulk(b"1.0.0")),
                      (bulk(b"group"), bulk(spec.group.encode()))], resp3)


# -- CONFIG ------------------------------------------------------------------------------
def _settings(conn: RespConnection) -> dict[str, str]:
    config = conn.service.state.config
    return {
        "appendonly": "yes",
        "appendfsync": "no" if config.unsafe_no_fsync else "always",
        "save": "",
        "databases": "1",
        "maxmemory": "0",
        "maxmemory-policy": "noeviction",
        "proto-max-bulk-len": str(config.max_value_bytes),
        "maxclients": str(conn.service.state.max_connections),
        "timeout": str(int(config.idle_timeout)),
        "port": str(conn.service.port),
        "bind": config.host,
        "dir": os.path.abspath(config.working_dir),
        "protected-mode": "no",
        "requirepass": "",
    }


def config(conn: RespConnection, args: list[bytes]) -> bytes:
    sub = args[1].lower()
    if sub == b"get":
        if len(args) < 3:
            return _arity("config|get")
        settings = _settings(conn)
        patterns = [a.decode("utf-8", "replace").lower() for a in args[2:]]
        found = [(k, v) for k, v in settings.items()
                 if any(fnmatch.fnmatchcase(k, p) for p in patterns)]
        return map_reply([(bulk(k.encode()), bulk(v.encode())) for k, v in found], conn.resp3)
    if sub == b"set":
        if len(args) < 4 or len(args) % 2:
            return _arity("config|set")
        name = args[2].decode("utf-8", "replace").lower()
        if name not in _settings(conn):
            return error(f"ERR Unknown option or number of arguments for CONFIG SET - "
                         f"'{name}'")
        return error(f"ERR CONFIG SET failed (possibly related to argument '{name}') - "
                     "walkv cannot change it while running (restart with the option)")
    if sub == b"resetstat":
        return OK
    return error(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                 "Try CONFIG HELP.")


# -- INFO --------------------------------------------------------------------------------
def info(conn: RespConnection, args: list[bytes]) -> bytes:
    sections = _sections(conn)
    wanted = [a.decode("utf-8", "replace").lower() for a in args[1:]]
    if not wanted or any(w in ("all", "everything", "default") for w in wanted):
        names: Sequence[str] = list(sections)
    else:
        names = [n for n in sections if n in wanted]
    text = "\r\n".join(f"# {n.capitalize()}\r\n" + "".join(f"{k}:{v}\r\n"
                                                          for k, v in sections[n].items())
                       for n in names)
    return verbatim(text.encode(), conn.resp3)


def _sections(conn: RespConnection) -> dict[str, dict[str, object]]:
    service = conn.service
    stats = service.introspection.stats()
    storage = stats.storage
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = _rss()
    uptime = int(stats.server.uptime_seconds)
    total_commands = sum(service.commands.values())
    return {
        "server": {
            "redis_version": REDIS_VERSION,
            "walkv_version": walkv_version(),
            "redis_mode": "standalone",
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "process_id": os.getpid(),
            "tcp_port": service.port,
            "uptime_in_seconds": uptime,
            "uptime_in_days": uptime // 86400,
        },
        "clients": {
            "connected_clients": service.connections(),
            "maxclients": service.state.max_connections,
        },
        "memory": {
            "used_memory": rss,
            "used_memory_rss": rss,
            "maxmemory": 0,
            "maxmemory_policy": "noeviction",
        },
        "persistence": {
            "loading": 0,
            "aof_enabled": 1,
            "appendfsync": "always",
            "aof_last_write_status": "ok" if stats.healthy else "err",
            "walkv_wal_groups": storage.groups,
            "walkv_wal_records": storage.records,
            "walkv_last_lsn": storage.last_lsn,
            "walkv_snapshot_age_seconds": ("" if stats.snapshot_age_seconds is None
                                           else int(stats.snapshot_age_seconds)),
            "walkv_unhealthy_reason": stats.unhealthy_reason or "",
        },
        "stats": {
            "total_connections_received": service.accepted,
            "total_commands_processed": total_commands,
            "rejected_connections": stats.server.connections_rejected,
            "expired_keys": storage.reaped,
            "total_error_replies": sum(service.errors.values()),
            "used_cpu_sys": f"{usage.ru_stime:.6f}",
            "used_cpu_user": f"{usage.ru_utime:.6f}",
        },
        "keyspace": ({"db0": f"keys={storage.keys},expires={storage.expiring_keys},"
                             "avg_ttl=0"} if storage.keys else {}),
    }


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024



# -- WAIT and WAITAOF ----------------------------------------------------------------------
def wait(conn: RespConnection, args: list[bytes]) -> bytes:
    if parse_int(args[1]) is None:
        return NOT_INTEGER
    timeout = parse_int(args[2])
    if timeout is None:
        return error("ERR timeout is not an integer or out of range")
    if timeout < 0:
        return error("ERR timeout is negative")
    return integer(0)  # no replicas


def waitaof(conn: RespConnection, args: list[bytes]) -> bytes:
    numlocal, numreplicas = parse_int(args[1]), parse_int(args[2])
    if numlocal is None or numreplicas is None:
        return NOT_INTEGER
    timeout = parse_int(args[3])
    if timeout is None:
        return error("ERR timeout is not an integer or out of range")
    if timeout < 0:
        return error("ERR timeout is negative")
    # Every write this connection was answered for is already fsynced to the local log.
    return array([integer(1), integer(0)])


_HANDLERS: Final = {"hello": hello, "auth": auth, "client": client, "command": command,
                    "config": config, "info": info, "wait": wait, "waitaof": waitaof}
