"""Image endpoints: list, inspect, history, tag, remove, prune, save (docker save), load, commit;
and pull, push, search and distribution, which explain that the node reaches no registry."""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs, urlsplit

from ..errors import BadParameter, EngineError
from ..fsutil import parse_rfc3339, rmtree
from ..images import delete, reference, save
from ..images.commit import commit as commit_container
from ..images.history import history
from ..images.imports import import_rootfs
from ..images.store import Image
from ..interface import EngineInterface
from . import views
from .filters import Filters, parse_filters
from .http import Request, Response, json_response
from .imagefilters import reference_match
from .router import Route
from .timestamps import parse_time

LIST_FILTERS = ("dangling", "label", "reference", "before", "since")
PRUNE_FILTERS = ("dangling", "until", "label", "label!")


def users(engine: EngineInterface) -> dict[str, list[delete.User]]:
    return delete.users_of(engine.containers.all())


def _listed(engine: EngineInterface, f: Filters, show_all: bool) -> list[tuple[Image, list[str] | None]]:
    """The images the filters keep, each with the tags to show (None: all of them)."""
    images = engine.images.images()
    dangling = f.flag("dangling")
    before = [parse_rfc3339(engine.images.resolve(r).created) for r in f.get("before")]
    since = [parse_rfc3339(engine.images.resolve(r).created) for r in f.get("since")]
    patterns = f.get("reference")
    kept: list[tuple[Image, list[str] | None]] = []
    for image in images:
        created = parse_rfc3339(image.created)
        if dangling is not None and dangling == bool(image.tags):
            continue
        if any(created >= b for b in before) or any(created <= s for s in since):
            continue
        if not f.labels_match(image.labels):
            continue
        if not image.tags and (patterns or (not show_all and engine.images.children(image.id))):
            continue  # an untagged parent is an intermediate image: shown with all=1 only
        tags: list[str] | None = None
        if patterns:
            tags = [t for t in image.tags if any(reference_match(p, t) for p in patterns)]
            if not tags:
                continue
        kept.append((image, tags))
    return kept


def list_images(engine: EngineInterface, req: Request) -> Response:
    f = parse_filters(req.arg("filters"), LIST_FILTERS)
    if req.arg("filter"):  # the pre-1.25 spelling of a reference filter
        f = Filters({**f.values, "reference": [*f.get("reference"), req.arg("filter")]})
    count = {image_id: len(cs) for image_id, cs in users(engine).items()}
    return json_response([views.image_summary(i, count.get(i.id, 0), tags)
                          for i, tags in _listed(engine, f, req.flag("all"))])


def _line(**data: object) -> bytes:
    return json.dumps(data).encode() + b"\n"


def load(engine: EngineInterface, req: Request) -> Response | None:
    """docker load: the upload lands on disk first; what the load says (errors too) streams
    back as JSON lines with 200, as dockerd answers (docker-py's ImageLoadError reads them).
    The reply starts once the load is over and its upload gone."""
    tmp = engine.images.tmp / f"load-{secrets.token_hex(8)}.tar"
    try:
        with open(tmp, "wb") as out:
            for chunk in req.body_chunks():
                out.write(chunk)
        try:
            lines = [_line(stream=line + "\n") for line in engine.load(tmp)]
        except EngineError as exc:
            lines = [_line(errorDetail={"message": exc.message}, error=exc.message)]
        except Exception as exc:  # reported in-band all the same, as dockerd does
            lines = [_line(errorDetail={"message": str(exc)}, error=str(exc))]
    finally:
        rmtree(tmp)
    writer = req.stream("application/json")
    for line in lines:
        writer.write(line)
    writer.close()
    return None


def _import_body(req: Request, engine: EngineInterface) -> Response:
    """docker import from the request body (fromSrc=-): one JSON status line with the new id."""
    if req.arg("fromSrc") != "-":
        raise BadParameter(f"fromSrc: {req.arg('fromSrc')[:200]!r}: only `-` (the request body) is supported; "
                           "this lab node reaches no network to download from")
    platform = req.arg("platform")
    if platform and platform.partition("/")[0] != "linux":
        raise BadParameter(f"platform: {platform[:100]!r} is not supported: images here are linux")
    repo = req.arg("repo")
    ref = reference.parse(repo, req.arg("tag")) if repo else None
    changes = parse_qs(urlsplit(req.handler.path).query, keep_blank_values=True).get("changes", [])
    tmp = engine.images.tmp / f"import-{secrets.token_hex(8)}.tar"
    try:
        with open(tmp, "wb") as out:
            for chunk in req.body_chunks():
                out.write(chunk)
        image = import_rootfs(engine.images, tmp, ref, req.arg("message"), changes)
    finally:
        rmtree(tmp)
    return Response(200, _line(status=image.id), "application/json")


def pull(engine: EngineInterface, req: Request) -> Response:
    name = req.arg("fromImage") or "image"
    if not req.arg("fromImage"):
        return _import_body(req, engine)
    return json_response({"message": f"No such image: {name}: this lab node reaches no registry to pull from. "
                          "Load images with `docker load` (or `labctl load -i FILE`), "
                          "or send one from the host with `lab image push LAB NODE FILE`."}, 404)


NO_REGISTRY = "this lab node reaches no registry"


def push(engine: EngineInterface, req: Request, name: str) -> Response:
    image = engine.images.resolve(name)  # an unknown image is a 404 of its own
    return json_response({"message": f"cannot push {image.tags[0] if image.tags else name}: {NO_REGISTRY}. "
                          "Save it with `docker save` and load it elsewhere with `docker load`."}, 404)


def search(engine: EngineInterface, req: Request) -> Response:
    return json_response({"message": f"cannot search for {req.arg('term')[:200]!r}: {NO_REGISTRY}"}, 404)


def distribution(engine: EngineInterface, req: Request, name: str) -> Response:
    return json_response({"message": f"cannot ask a registry about {name[:200]}: {NO_REGISTRY}"}, 404)


def image_inspect(engine: EngineInterface, req: Request, name: str) -> Response:
    image = engine.images.resolve(name)
    dirs = [str(p) for p in engine.images.layer_dirs(image)]
    return json_response(views.image_inspect(image, dirs, engine.images.meta.last_tag_time(image.id)))


def image_history(engine: EngineInterface, req: Request, name: str) -> Response:
    return json_response(history(engine.images, engine.images.resolve(name)))


def image_tag(engine: EngineInterface, req: Request, name: str) -> Response:
    """POST /images/{name}/tag?repo=&tag=: the new name checked first (400), then the image (404)."""
    repo = req.arg("repo")
    if not repo:
        raise BadParameter("repo: a repository name is required")
    ref = reference.parse(repo, req.arg("tag"))
    engine.images.tag(engine.images.resolve(name), ref)
    return Response(201, b"", "text/plain")


def image_remove(engine: EngineInterface, req: Request, name: str) -> Response:
    if not name.strip():
        raise BadParameter("image name cannot be blank")
    return json_response(delete.remove(engine.images, name, users(engine), force=req.flag("force"),
                                       prune=not req.flag("noprune")))


def image_prune(engine: EngineInterface, req: Request) -> Response:
    f = parse_filters(req.arg("filters"), PRUNE_FILTERS)
    dangling = f.flag("dangling")
    until = f.one("until")
    limit = parse_time(until, "until") if until is not None else None

    def labelled(image: Image) -> bool:
        labels = image.labels
        return f.labels_match(labels) and ("label!" not in f or not f.labels_match(labels, "label!"))

    return json_response(delete.prune(engine.images, users(engine), dangling is not False, limit, labelled))


def commit(engine: EngineInterface, req: Request) -> Response:
    """POST /commit?container=&repo=&tag=&comment=&author=&changes=&pause=: 201 {"Id"}."""
    if not req.arg("container"):
        raise BadParameter("container: the container to commit is required")
    repo = req.arg("repo")
    ref = reference.parse(repo, req.arg("tag")) if repo else None
    changes = parse_qs(urlsplit(req.handler.path).query, keep_blank_values=True).get("changes", [])
    image = commit_container(engine, req.arg("container"), ref, req.arg("comment"), req.arg("author"), changes,
                             req.json() or None, pause=req.flag("pause", True))
    return json_response({"Id": image.id}, 201)


def _send_archive(names: list[str], engine: EngineInterface, req: Request) -> None:
    chosen = save.select(engine.images, names)  # unknown names are a 404 before the reply starts
    writer = req.stream("application/x-tar")
    save.write(engine.images, chosen, writer)
    writer.close()


def save_many(engine: EngineInterface, req: Request) -> None:
    names = parse_qs(urlsplit(req.handler.path).query, keep_blank_values=True).get("names", [])
    _send_archive(names, engine, req)


def save_one(engine: EngineInterface, req: Request, name: str) -> None:
    _send_archive([name], engine, req)


ROUTES: list[Route] = [
    ("GET", "/images/json", list_images),
    ("POST", "/images/load", load),
    ("POST", "/images/create", pull),
    ("POST", "/images/prune", image_prune),
    ("GET", "/images/get", save_many),
    ("GET", "/images/{name*}/get", save_one),
    ("GET", "/images/{name*}/json", image_inspect),
    ("GET", "/images/{name*}/history", image_history),
    ("POST", "/images/{name*}/tag", image_tag),
    ("DELETE", "/images/{name*}", image_remove),
    ("POST", "/commit", commit),
    ("POST", "/images/{name*}/push", push),
    ("GET", "/images/search", search),
    ("GET", "/distribution/{name*}/json", distribution),
]
