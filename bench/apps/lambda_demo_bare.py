"""Cold-start baseline: the demo's FastAPI app behind bare Mangum (lifespan "auto")."""

from mangum import Mangum

from bench.apps.demo_routes import build_api

handler = Mangum(build_api())
