"""``python -m harness crash``: SIGKILL a real server mid-write, damage its files, check.

- ``torture``: the kill/restart cycles, their verification and the report.
- ``workload``: concurrent random writers recorded by an oracle; reading the state back.
- ``damage``: file damage between cycles and what a correct server must then do.
- ``resp``: the same cycles over the Redis protocol (``--protocol resp``): its
  writers, read-back and verification hooks; ``respwire``: the RESP2 client it uses.

The oracles (``harness.oracle``, ``harness.history``) are shared with the power-loss
explorer and live one level up.
"""
