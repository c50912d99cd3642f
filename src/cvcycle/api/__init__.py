"""The REST API: a FastAPI app whose routers parse, call one service function and return."""

from cvcycle.api.app import create_app

__all__ = ["create_app"]
