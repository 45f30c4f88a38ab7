"""walkv's network front end: HTTP/1.1 on asyncio + uvloop, speaking to ``storage``."""
