"""Test support that ships with the engine: power loss, faults, and the file layout.

* ``memfs.MemFileSystem``: the ``FileSystem`` seam in memory; knows what was synced,
  builds the states a power cut could leave, fails the Nth fsync or runs out of
  space. The power-loss explorer (``harness/powerloss.py``) and the unit tests run
  the engine on it.
* ``ondisk``: which frames and records sit where in a working directory, for the
  crash harness's file damage.

Nothing in the engine imports this package.
"""

from storage.testing.memfs import FsOp, FsOpKind, MemFileSystem, PowerCut

__all__ = ["FsOp", "FsOpKind", "MemFileSystem", "PowerCut"]
