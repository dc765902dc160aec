"""Every endpoint the engine serves: each area's route table, in the order they are matched.

A new area module is served once its ROUTES are listed here (a unit test checks that no
endpoint of the api package is left out of a table).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import archive, builds, containerops, containers, events, execs, images, networks, swarm, system, volumes
from .router import Route, Router

# One per line, so that areas added side by side merge cleanly.
TABLES: tuple[Sequence[Route], ...] = (
    system.ROUTES,
    containers.ROUTES,
    containerops.ROUTES,
    execs.ROUTES,
    images.ROUTES,
    builds.ROUTES,
    events.ROUTES,
    volumes.ROUTES,
    archive.ROUTES,
    networks.ROUTES,
    swarm.ROUTES,
)


def router() -> Router:
    return Router(TABLES)
