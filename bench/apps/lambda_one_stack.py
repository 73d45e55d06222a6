"""Cold start of the one-route Starlette app in the whole stack, configured from the
environment (DynamoDB storage when RATE_LIMIT_TABLE is set)."""

from asgi_lambda_mw import compose, lambda_handler
from bench.apps.one_route import ORIGIN, build_app

handler = lambda_handler(compose(build_app(), cors={"allow_origins": [ORIGIN]}))
