"""The demo: one FastAPI app, three entry points.

- ``api``: the plain FastAPI app;
- ``app``: the same app inside the composed stack, configured from the environment
  (memory storage unless RATE_LIMIT_TABLE is set): ``uvicorn demo_app.main:app``;
- ``handler``: the Lambda handler (serverless.yml points at it).
"""

from __future__ import annotations

import base64
import logging
from typing import Annotated

from fastapi import Cookie, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

from asgi_lambda_mw import client_ip, compose, lambda_handler
from asgi_lambda_mw.tracing import current_request_id

logger = logging.getLogger("demo_app")

api = FastAPI(title="asgi-lambda-mw demo", version="1.0")

# A 1x1 transparent PNG, to show binary responses through API Gateway.
_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


class NewItem(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    price: float = Field(ge=0)


class Item(NewItem):
    id: int


# Per process, like any Lambda-local state: enough to show POST then GET.
_items: dict[int, Item] = {}


@api.get("/")
async def index() -> dict[str, str]:
    return {"message": "Hello from asgi-lambda-mw"}


@api.get("/hello/{name}")
async def hello(name: str) -> dict[str, str]:
    logger.info("greeting %s", name)
    return {"message": f"Hello, {name}!"}


@api.post("/items", status_code=201)
async def create_item(item: NewItem) -> Item:
    created = Item(id=len(_items) + 1, **item.model_dump())
    _items[created.id] = created
    return created


@api.get("/items/{item_id}")
async def read_item(item_id: int) -> Item:
    if item_id not in _items:
        raise HTTPException(status_code=404, detail="item not found")
    return _items[item_id]


@api.get("/image.png")
async def image() -> Response:
    return Response(content=_PIXEL_PNG, media_type="image/png")


@api.get("/cookies")
async def read_cookies(flavour: Annotated[str | None, Cookie()] = None) -> dict[str, str | None]:
    return {"flavour": flavour}


@api.post("/cookies")
async def set_cookie(response: Response, flavour: str = "chocolate") -> dict[str, str]:
    response.set_cookie("flavour", flavour, httponly=True, samesite="lax")
    return {"set": flavour}


@api.get("/boom")
async def boom() -> None:
    raise RuntimeError("an unhandled error, to show the JSON 500")


@api.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@api.get("/whoami")
async def whoami(request: Request) -> dict[str, str | None]:
    return {"client_ip": client_ip(request.scope), "request_id": current_request_id()}


app = compose(api, rate_limit={"exempt_paths": ["/health"]})
handler = lambda_handler(app)
