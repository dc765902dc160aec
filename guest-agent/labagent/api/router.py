"""Route table, API-version prefixes, and mapping engine errors to Docker's error bodies."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .. import API_VERSION, MIN_API_VERSION
from ..containers.lifecycle import ClientGone
from ..errors import EngineError
from .http import Request, Response, engine_error_response, error_response

if TYPE_CHECKING:
    from .http import Handler

log = logging.getLogger(__name__)
VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")
Route = Callable[..., Response | None]
ROUTES: list[tuple[str, re.Pattern[str], Route]] = []


def route(method: str, pattern: str) -> Callable[[Route], Route]:
    """Register a handler; `{name}` captures one path segment, `{name*}` the rest (image names)."""
    pattern = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(func: Route) -> Route:
        ROUTES.append((method, regex, func))
        return func

    return register


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def split_version(raw_path: str) -> tuple[str, str | None]:
    path = unquote(urlsplit(raw_path).path)
    match = VERSIONED.match(path)
    if match:
        return match.group(2), match.group(1)
    return path, None


def check_version(version: str | None) -> Response | None:
    if version is None:
        return None
    if _version_tuple(version) > _version_tuple(API_VERSION):
        return error_response(f"client version {version} is too new. Maximum supported API version "
                              f"is {API_VERSION}", 400)
    if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
        return error_response(f"client version {version} is too old. Minimum supported API version "
                              f"is {MIN_API_VERSION}, please upgrade your client to a newer version", 400)
    return None


def dispatch(handler: Handler) -> tuple[Request | None, Response | None]:
    from . import routes  # noqa: F401  (registers the handlers)

    path, version = split_version(handler.path)
    try:
        request = Request(handler, path, version)
    except EngineError as exc:
        return None, engine_error_response(exc)
    bad_version = check_version(version)
    if bad_version:
        return request, bad_version
    method = "GET" if handler.command == "HEAD" else handler.command
    engine: Any = handler.server.engine  # type: ignore[attr-defined]
    for verb, regex, func in ROUTES:
        match = regex.match(path)
        if match and verb == method:
            try:
                return request, func(engine, request, **match.groupdict())
            except ClientGone:
                handler.close_connection = True
                return request, None
            except EngineError as exc:
                if request.streamed:
                    handler.close_connection = True
                    return request, None
                return request, engine_error_response(exc)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as exc:
                log.exception("%s %s failed", handler.command, path)
                if request.streamed:
                    handler.close_connection = True
                    return request, None
                return request, error_response(str(exc) or exc.__class__.__name__, 500)
    return request, error_response("page not found", 404)
