"""`docker commit`: a container's upper dir becomes a layer on its image, the image its parent.

The new config is the container's (its image's config with what the create asked for over
it), then the `changes` lines, then the request body's config; the history is the image's
and one entry for the commit. A running container is paused (cgroup freezer) while its
upper dir is read, unless pause=false, as dockerd does.
"""

from __future__ import annotations

import copy
import json
import secrets
from typing import TYPE_CHECKING, Any

from ..build.layer import ReservedName, tar_dir
from ..errors import BadParameter
from ..fsutil import rfc3339, rmtree
from . import changes as config_changes
from .reference import Reference
from .store import LAYER_TAR, Image, LayerBlob

if TYPE_CHECKING:
    from ..containers.model import Container
    from ..interface import EngineInterface

BODY_FIELDS = ("Cmd", "Entrypoint", "Env", "Labels", "User", "WorkingDir", "ExposedPorts", "Volumes",
               "StopSignal", "OnBuild")


def container_config(container: Container, image: Image) -> dict[str, Any]:
    """The container's config as dockerd keeps it: the image's, with the create's values over it."""
    spec = container.spec
    config: dict[str, Any] = copy.deepcopy(image.config.get("config") or {})
    if spec.entrypoint:
        config["Entrypoint"], config["Cmd"] = list(spec.entrypoint), list(spec.cmd) or None
    elif spec.cmd:
        config["Cmd"] = list(spec.cmd)
    env = list(config.get("Env") or [])
    for entry in spec.env:
        env = [e for e in env if e.partition("=")[0] != entry.partition("=")[0]] + [entry]
    config["Env"] = env or None
    config["Labels"] = {**(config.get("Labels") or {}), **spec.labels} or None
    config["WorkingDir"] = spec.workdir or config.get("WorkingDir") or ""
    config["User"] = spec.user or config.get("User") or ""
    ports = {**(config.get("ExposedPorts") or {}), **{p: {} for p in spec.exposed}}
    config["ExposedPorts"] = ports or None
    return config


def _body_config(body: object) -> dict[str, Any]:
    """The request body's config fields that are set; one this engine cannot honour is refused."""
    if body is None or body == {}:
        return {}
    if not isinstance(body, dict):
        raise BadParameter("the commit body is not a container config object")
    unknown = sorted(k for k, v in body.items() if k not in BODY_FIELDS and v not in (None, "", [], {}, False, 0))
    if unknown:
        raise BadParameter(f"commit config: {', '.join(unknown)[:300]} cannot be set by a commit here "
                           f"(supported: {', '.join(BODY_FIELDS)})")
    return {k: v for k, v in body.items() if k in BODY_FIELDS and v not in (None, "", [], {})}


def commit(engine: EngineInterface, name: str, ref: Reference | None, comment: str, author: str,
           changes: list[str], body: object, pause: bool = True) -> Image:
    container = engine.containers.get(name)
    store = engine.images
    image = store.resolve(container.spec.image_id)
    config = container_config(container, image)
    for change in changes[: config_changes.MAX_CHANGES + 1]:
        if change.strip():
            config_changes.apply(config, change)
    if len(changes) > config_changes.MAX_CHANGES:
        raise BadParameter(f"changes: {len(changes)} lines, at most {config_changes.MAX_CHANGES}")
    config.update(_body_config(body))
    work = store.tmp / f"commit-{secrets.token_hex(8)}.tar"
    try:
        frozen = pause and container.running and not container.state.paused
        if frozen:
            engine.lifecycle.pause(container.id)
        try:
            tar_dir(engine.containers.bundle(container.id) / "upper", work)
        except ReservedName as exc:
            raise BadParameter(f"the container holds {exc.message}") from None
        finally:
            if frozen:
                engine.lifecycle.unpause(container.id)
        with store.staging() as stage:
            blob = store.put_file(work, stage)
            created = rfc3339()
            history = [h for h in image.config.get("history") or [] if isinstance(h, dict)]
            history.append({"created": created, "created_by": " ".join(container.spec.argv or config.get("Cmd") or []),
                            **({"author": author} if author else {}), **({"comment": comment} if comment else {})})
            document = {
                "architecture": image.config.get("architecture") or "amd64", "os": image.config.get("os") or "linux",
                "created": created, "author": author, "comment": comment, "config": config,
                "container": container.id, "container_config": config, "docker_version": "",
                "rootfs": {"type": "layers", "diff_ids": [*image.diff_ids, blob.digest]}, "history": history,
            }
            manifest = store.manifest_layers(image)
            new = store.add_image(json.dumps(document, sort_keys=True).encode(),
                                  [*manifest, LayerBlob(blob.digest, blob.size, LAYER_TAR)],
                                  [str(ref)] if ref else [], stage, parent=image.id)
    finally:
        rmtree(work)
    engine.events.emit("container", "commit", container.id, comment=comment, imageID=new.id,
                       imageRef=str(ref) if ref else "", name=container.name, image=container.spec.image)
    return new
