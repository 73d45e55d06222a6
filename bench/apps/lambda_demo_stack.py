"""Cold start of the real demo (demo_app.main: the whole stack, DynamoDB storage when
RATE_LIMIT_TABLE is set, as on Lambda)."""

from demo_app.main import handler

__all__ = ["handler"]
