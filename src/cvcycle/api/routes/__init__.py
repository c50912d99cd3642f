"""Every router of the API, in the order the app includes them (one module per area)."""

from __future__ import annotations

from fastapi import APIRouter

from cvcycle.api.routes import system

ROUTERS: list[APIRouter] = [system.router]
