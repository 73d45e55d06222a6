"""A small FastAPI app that shows what the asgi-lambda-mw stack does, on uvicorn and on Lambda."""
