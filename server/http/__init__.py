"""HTTP/1.1: the sans-IO codec, the router, the answer tables, the asyncio protocol."""
