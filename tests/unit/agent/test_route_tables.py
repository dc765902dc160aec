"""The API's route tables: every endpoint of the api package is in a table the router is built from."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import labagent.api
import pytest
from labagent.api import builds, containers, execs, images, networks, system
from labagent.api.router import Router
from labagent.api.tables import TABLES, router


def api_modules() -> list[ModuleType]:
    return [importlib.import_module(f"labagent.api.{info.name}")
            for info in pkgutil.iter_modules(labagent.api.__path__)]


def looks_like_an_endpoint(func: object) -> bool:
    """endpoint(engine, req, **path parameters), as the router calls it."""
    if not inspect.isfunction(func):
        return False
    return list(inspect.signature(func).parameters)[:2] == ["engine", "req"]


def test_every_endpoint_function_of_the_api_package_is_in_a_table() -> None:
    tabled = {endpoint for table in TABLES for _, _, endpoint in table}
    found = [func for module in api_modules() for _, func in inspect.getmembers(module, looks_like_an_endpoint)
             if func.__module__ == module.__name__]
    assert len(found) > 20
    missing = [f"{func.__module__}.{func.__name__}" for func in found if func not in tabled]
    assert missing == []


def test_every_area_that_exports_a_table_is_listed() -> None:
    exporting = {module.__name__ for module in api_modules() if hasattr(module, "ROUTES")}
    listed = {module.__name__ for module in api_modules()
              if any(getattr(module, "ROUTES", None) is table for table in TABLES)}
    assert exporting == listed
    assert {m.__name__ for m in (system, containers, execs, images, builds)} <= listed


def test_no_two_routes_share_a_method_and_pattern() -> None:
    keys = [(method, pattern) for table in TABLES for method, pattern, _ in table]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(("method", "path", "endpoint", "params"), [
    ("GET", "/_ping", system.ping, {}),
    ("GET", "/containers/json", containers.list_containers, {}),
    ("GET", "/containers/web/json", containers.inspect, {"ref": "web"}),
    ("DELETE", "/containers/web", containers.remove, {"ref": "web"}),
    ("POST", "/containers/web/exec", execs.exec_create, {"ref": "web"}),
    ("GET", "/images/json", images.list_images, {}),
    ("GET", "/images/library/busybox:1.36/json", images.image_inspect, {"name": "library/busybox:1.36"}),
    ("DELETE", "/images/registry:5000/app", images.image_remove, {"name": "registry:5000/app"}),
    ("POST", "/build", builds.build, {}),
    ("POST", "/networks/create", networks.create, {}),
    ("POST", "/networks/prune", networks.prune, {}),
    ("POST", "/networks/app/connect", networks.connect, {"ref": "app"}),
])
def test_the_router_finds_each_areas_endpoint(method: str, path: str, endpoint: object,
                                               params: dict[str, str]) -> None:
    assert router().match(method, path) == (endpoint, params)


def test_a_table_left_out_of_the_router_is_not_served() -> None:
    only_system = Router([system.ROUTES])
    assert only_system.match("GET", "/_ping") is not None
    assert only_system.match("GET", "/containers/json") is None
    assert router().match("PUT", "/_ping") is None
    assert router().match("GET", "/containers/web/json/extra") is None
