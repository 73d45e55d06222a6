"""The demo's routes (demo_app/main.py) without the library, so the cold-start baselines
(bare Mangum, the peer composition, boto3 at import) serve the same FastAPI app as the demo.
Only ``/whoami`` differs: it reads ``request.client`` instead of the library's helpers.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import Cookie, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


class NewItem(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    price: float = Field(ge=0)


class Item(NewItem):
    id: int


def build_api() -> FastAPI:
    api = FastAPI(title="asgi-lambda-mw demo", version="1.0")
    items: dict[int, Item] = {}

    @api.get("/")
    async def index() -> dict[str, str]:
        return {"message": "Hello from asgi-lambda-mw"}

    @api.get("/hello/{name}")
    async def hello(name: str) -> dict[str, str]:
        return {"message": f"Hello, {name}!"}

    @api.post("/items", status_code=201)
    async def create_item(item: NewItem) -> Item:
        created = Item(id=len(items) + 1, **item.model_dump())
        items[created.id] = created
        return created

    @api.get("/items/{item_id}")
    async def read_item(item_id: int) -> Item:
        if item_id not in items:
            raise HTTPException(status_code=404, detail="item not found")
        return items[item_id]

    @api.get("/image.png")
    async def image() -> Response:
        return Response(content=_PIXEL_PNG, media_type="image/png")

    @api.get("/cookies")
    async def read_cookies(
        flavour: Annotated[str | None, Cookie()] = None,
    ) -> dict[str, str | None]:
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
        return {"client_ip": request.client.host if request.client else None}

    return api
