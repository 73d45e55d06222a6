"""The apps the benchmarks serve: the same routes bare, inside our stack, and inside the peer
composition (slowapi + Starlette's CORSMiddleware + asgi-correlation-id)."""
