"""Cold-start baseline: the one-route Starlette app behind bare Mangum (lifespan "auto")."""

from mangum import Mangum

from bench.apps.one_route import build_app

handler = Mangum(build_app())
