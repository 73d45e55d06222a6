"""The rate-limit layer: policy (rates and algorithms), storages and the ASGI middleware."""
