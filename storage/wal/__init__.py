"""The write-ahead log: segments named by their first LSN, each a header then frames.

``log.py`` owns the segments while the engine runs (append, rotate, delete what a
snapshot covers); ``writer.py`` appends to one segment; ``reader.py`` reads one
segment's frames back; ``scan.py`` judges a segment (clean, zero tail, torn tail or
corruption) for recovery and the offline tool alike. The bytes are in
``storage/format.py`` and ``storage/FORMAT.md``.
"""
