"""Run a parsed Containerfile against the engine: each RUN/COPY step is one cached layer.

The cache key of a step is the hash of its parent's key and the step (plus, for COPY, the
content of its sources), so two Containerfiles that start alike reuse the same layers, and
so the same layer directories on disk.

Nothing here joins a path string to reach into a tree: the context is read through its fd
(context.py), COPY writes through the staging tree's fd at paths resolved in the image
(copystep.py), and layers are made by a walk that follows no link (layer.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..beneath import open_tree
from ..containers.model import CreateSpec
from ..errors import BadParameter, EngineError
from ..fsutil import read_json, rfc3339, rmtree, write_json
from ..images.store import LAYER_TAR, Image, LayerBlob
from .containerfile import Instruction, parse
from .context import Context
from .copystep import copy_into
from .layer import ReservedName, tar_dir
from .rootview import RootView, image_path

if TYPE_CHECKING:
    from ..interface import EngineInterface

Emit = Callable[[str], None]
MAX_LAYERS = 125  # Docker's limit too: overlay stacks no more lower dirs than that on one mount


class BuildError(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 400)


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _base_config(ref: str, image: Image) -> tuple[dict[str, Any], list[Any]]:
    """The base image's container config and history, checked: a loaded image may say anything."""
    config = image.config.get("config") or {}
    history = image.config.get("history") or []
    if not isinstance(config, dict) or not isinstance(history, list):
        raise BadParameter(f"base image {ref}: its config is not an image config")
    config = dict(config)
    workdir = config.get("WorkingDir") or ""
    if not isinstance(workdir, str) or "\0" in workdir:
        raise BadParameter(f"base image {ref}: WorkingDir {workdir!r} is not a path")
    if workdir:
        config["WorkingDir"] = image_path(workdir)  # "../../x" is /x: always absolute and clean
    return config, list(history)


def _with_line(step: Instruction, exc: BadParameter) -> BadParameter:
    if exc.message.startswith("Containerfile line"):
        return exc
    return BadParameter(f"Containerfile line {step.line}: {exc.message}")


class Builder:
    def __init__(self, engine: EngineInterface) -> None:
        self.engine = engine
        self.store = engine.images
        self.cache = engine.root / "build-cache"
        self.cache.mkdir(exist_ok=True)

    def build(self, context: Path, text: str, tags: list[str], emit: Emit) -> Image:
        steps = parse(text)
        with open_tree(context) as fd:
            return self._build(Context(fd), steps, tags, emit)

    def _build(self, context: Context, steps: list[Instruction], tags: list[str], emit: Emit) -> Image:
        base = self.store.resolve(steps[0].args[0])
        manifest = read_json(self.store.blob_path(base.manifest_digest))
        blobs = [LayerBlob(m["digest"], m["size"], m.get("mediaType", LAYER_TAR)) for m in manifest["layers"]]
        diff_ids = list(base.diff_ids)
        config, history = _base_config(steps[0].args[0], base)
        key, created = _hash("FROM", base.id), base.created
        emit(f"Step 1/{len(steps)} : {steps[0]}\n ---> {base.id[7:19]}\n")
        for number, step in enumerate(steps[1:], 2):
            emit(f"Step {number}/{len(steps)} : {step}\n")
            try:
                if step.verb in ("RUN", "COPY"):
                    key, entry = self._layer(step, key, context, blobs, diff_ids, config, emit)
                    blobs.append(LayerBlob(entry["blob"], entry["size"], LAYER_TAR))
                    diff_ids.append(entry["diff_id"])
                    created = entry["created"]
                    emit(f" ---> {entry['diff_id'][7:19]}\n")
                else:
                    key = _hash(key, str(step))
                    self._apply(step, config)
            except BadParameter as exc:
                raise _with_line(step, exc) from None
            history.append({"created": created, "created_by": str(step), "empty_layer": step.verb not in
                            ("RUN", "COPY")})
        image = self.store.add_image(self._config(config, diff_ids, history, created), blobs, tags,
                                     parent=base.id)
        emit(f"Successfully built {image.id[7:19]}\n")
        for tag in image.tags:
            emit(f"Successfully tagged {tag}\n")
        return image

    # steps -------------------------------------------------------------------------------
    def _layer(self, step: Instruction, key: str, context: Context, blobs: list[LayerBlob], diff_ids: list[str],
               config: dict[str, Any], emit: Emit) -> tuple[str, dict[str, Any]]:
        """A RUN or COPY step's cache key and layer: from the cache, else made now."""
        if len(diff_ids) >= MAX_LAYERS:
            raise BadParameter(f"more than {MAX_LAYERS} layers: the image has {len(diff_ids)}")
        extra = context.digest(list(step.args[:-1])) if step.verb == "COPY" else ""
        key = _hash(key, str(step), extra)
        entry = self._cached(key)
        if entry:
            emit(" ---> Using cache\n")
            return key, entry
        if step.verb == "RUN":
            entry = self._run(step, blobs, diff_ids, config, emit)
        else:
            entry = self._copy(step, context, diff_ids, config)
        write_json(self.cache / f"{key}.json", entry)
        return key, entry

    @staticmethod
    def _apply(step: Instruction, config: dict[str, Any]) -> None:
        """The metadata-only steps: they change the image config, not the filesystem."""
        if step.verb == "ENV":
            env = [e for e in config.get("Env") or []]
            for name, value in zip(step.args[::2], step.args[1::2], strict=True):
                env = [e for e in env if e.partition("=")[0] != name] + [f"{name}={value}"]
            config["Env"] = env
        elif step.verb == "LABEL":
            config["Labels"] = {**(config.get("Labels") or {}), **dict(zip(step.args[::2], step.args[1::2],
                                                                              strict=True))}
        elif step.verb == "WORKDIR":  # relative to the one before; `..` stops at the image's /
            config["WorkingDir"] = image_path(step.args[0], config.get("WorkingDir") or "/")
        elif step.verb == "EXPOSE":
            config["ExposedPorts"] = {**(config.get("ExposedPorts") or {}), **{p: {} for p in step.args}}
        elif step.verb == "CMD":
            config["Cmd"] = list(step.args)
        elif step.verb == "ENTRYPOINT":
            config["Entrypoint"] = list(step.args)
            config["Cmd"] = None  # Docker resets CMD when ENTRYPOINT changes

    def _cached(self, key: str) -> dict[str, Any] | None:
        """A cache entry whose blob and unpacked layer still exist (rmi may have collected them)."""
        path = self.cache / f"{key}.json"
        if not path.exists():
            return None
        entry: dict[str, Any] = read_json(path)
        if self.store.blob_path(entry["blob"]).exists() and self.store.layer_dir(entry["diff_id"]).exists():
            return entry
        return None

    def _commit_layer(self, tarball: Path) -> dict[str, Any]:
        blob = self.store.put_file(tarball)
        self.store.ensure_layer(blob.digest, blob.digest)  # an uncompressed tar: diff id = digest
        return {"blob": blob.digest, "diff_id": blob.digest, "size": blob.size, "created": rfc3339()}

    def _copy(self, step: Instruction, context: Context, diff_ids: list[str], config: dict[str, Any]
              ) -> dict[str, Any]:
        """The sources, written into a fresh tree at their paths in the image so far, as one layer."""
        *sources, dest = step.args
        work = self.store.tmp / f"copy-{secrets.token_hex(8)}"
        tree = work / "tree"
        tree.mkdir(parents=True)
        try:
            with RootView([self.store.layer_dir(d) for d in diff_ids]) as view, open_tree(tree) as stage:
                copy_into(context, sources, dest, config.get("WorkingDir") or "/", view, stage)
            try:
                tar_dir(tree, work / "layer.tar")
            except ReservedName as exc:
                raise BadParameter(f"COPY would create {exc.message}") from None
            return self._commit_layer(work / "layer.tar")
        finally:
            rmtree(work)

    def _run(self, step: Instruction, blobs: list[LayerBlob], diff_ids: list[str], config: dict[str, Any],
             emit: Emit) -> dict[str, Any]:
        """A container of the image so far runs the command; its upper dir becomes the layer."""
        interim = self.store.add_image(self._config(config, diff_ids, [], rfc3339()), blobs, [])
        engine = self.engine
        spec = CreateSpec(image=interim.id, image_id="", entrypoint=list(step.args), network_mode="none",
                             workdir=config.get("WorkingDir") or "")
        container = engine.lifecycle.create("", spec)
        work = self.store.tmp / f"run-{secrets.token_hex(8)}.tar"
        try:
            emit(f" ---> Running in {container.id[:12]}\n")
            engine.lifecycle.start(container.id)
            logfile = engine.containers.logfile(container.id)
            for entry in logfile.follow(0, lambda: not container.running, lambda: False):
                emit(entry.data.decode("utf-8", "replace"))
            done = engine.lifecycle.wait(container)
            if done.state.exit_code != 0:
                raise BuildError(f"Containerfile line {step.line}: The command '{' '.join(step.args)}' "
                                 f"returned a non-zero code: {done.state.exit_code}")
            try:
                tar_dir(engine.containers.bundle(container.id) / "upper", work)
            except ReservedName as exc:
                raise BuildError(f"Containerfile line {step.line}: RUN created {exc.message}") from None
            return self._commit_layer(work)
        finally:
            rmtree(work)
            engine.lifecycle.remove(container.id, force=True)
            self.store.forget_dangling(interim.manifest_digest)

    @staticmethod
    def _config(config: dict[str, Any], diff_ids: list[str], history: list[dict[str, Any]],
                created: str) -> bytes:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        data = {"architecture": arch, "os": "linux", "created": created, "config": config,
                "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}
        return json.dumps(data, sort_keys=True).encode()
