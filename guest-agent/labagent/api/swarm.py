"""Swarm endpoints: this engine is never part of a swarm, and answers as an inactive dockerd does.

docker-py's network tests call leave_swarm in setUp and tearDown and accept this 503.
"""

from __future__ import annotations

from ..errors import EngineError
from ..interface import EngineInterface
from .http import Request, Response
from .router import Route

NOT_IN_SWARM = "This node is not part of a swarm"


def not_in_swarm(engine: EngineInterface, req: Request) -> Response:
    raise EngineError(NOT_IN_SWARM, 503)


ROUTES: list[Route] = [
    ("GET", "/swarm", not_in_swarm),
    ("POST", "/swarm/leave", not_in_swarm),
]
