"""Every router of the API, in the order the app includes them (one module per area)."""

from __future__ import annotations

from fastapi import APIRouter

from cvcycle.api.routes import annotation, datasets, events, feedback, loop, media, models, runs, system

ROUTERS: list[APIRouter] = [
    system.router,
    events.router,
    feedback.router,
    loop.router,
    datasets.router,
    runs.router,
    models.router,
    annotation.router,
    media.router,
]
