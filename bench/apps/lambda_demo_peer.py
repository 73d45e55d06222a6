"""Cold-start reference: the demo's app with slowapi + Starlette's CORSMiddleware +
asgi-correlation-id, behind Mangum."""

from mangum import Mangum

from bench.apps.demo_routes import build_api
from bench.apps.one_route import add_peer_middleware

handler = Mangum(add_peer_middleware(build_api(), rate="100 per minute"))
