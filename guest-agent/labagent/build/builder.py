"""Run a parsed Containerfile against the engine: each RUN/COPY step is one cached layer.

The cache key of a step is the hash of its parent's key and the step (plus, for COPY, the
content of its sources), so two Containerfiles that start alike reuse the same layers, and
so the same layer directories on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadParameter, EngineError
from ..fsutil import read_json, rfc3339, rmtree, write_json
from ..imagestore import LAYER_TAR, Image, LayerBlob
from ..model import ContainerSpec
from .containerfile import Instruction, parse
from .layer import tar_dir

if TYPE_CHECKING:
    from ..engine import Engine

Emit = Callable[[str], None]


class BuildError(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 400)


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _inside(context: Path, rel: str, line: int) -> Path:
    path = (context / rel.lstrip("/")).resolve()
    if path != context.resolve() and context.resolve() not in path.parents:
        raise BadParameter(f"Containerfile line {line}: COPY source {rel!r} is outside the build context")
    if not path.exists():
        raise BadParameter(f"Containerfile line {line}: COPY source {rel!r} not found in the build context")
    return path


def _content_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for top in paths:
        for path in sorted([top, *top.rglob("*")] if top.is_dir() else [top]):
            st = os.lstat(path)
            digest.update(f"{path.relative_to(top.parent)}\0{st.st_mode}\0".encode())
            if path.is_file() and not path.is_symlink():
                digest.update(path.read_bytes())
            elif path.is_symlink():
                digest.update(os.readlink(path).encode())
    return digest.hexdigest()


class Builder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.images
        self.cache = engine.root / "build-cache"
        self.cache.mkdir(exist_ok=True)

    def build(self, context: Path, text: str, tags: list[str], emit: Emit) -> Image:
        steps = parse(text)
        base = self.store.resolve(steps[0].args[0])
        manifest = read_json(self.store.blob_path(base.manifest_digest))
        blobs = [LayerBlob(m["digest"], m["size"], m.get("mediaType", LAYER_TAR)) for m in manifest["layers"]]
        diff_ids, config = list(base.diff_ids), dict(base.config.get("config") or {})
        history = list(base.config.get("history") or [])
        key, created = _hash("FROM", base.id), base.created
        emit(f"Step 1/{len(steps)} : {steps[0]}\n ---> {base.id[7:19]}\n")
        for number, step in enumerate(steps[1:], 2):
            emit(f"Step {number}/{len(steps)} : {step}\n")
            if step.verb in ("RUN", "COPY"):
                extra = ""
                if step.verb == "COPY":
                    extra = _content_hash([_inside(context, s, step.line) for s in step.args[:-1]])
                key = _hash(key, str(step), extra)
                entry = self._cached(key)
                if entry:
                    emit(" ---> Using cache\n")
                else:
                    if step.verb == "RUN":
                        entry = self._run(step, blobs, diff_ids, config, emit)
                    else:
                        entry = self._copy(step, context, config)
                    write_json(self.cache / f"{key}.json", entry)
                blobs.append(LayerBlob(entry["blob"], entry["size"], LAYER_TAR))
                diff_ids.append(entry["diff_id"])
                created = entry["created"]
                emit(f" ---> {entry['diff_id'][7:19]}\n")
            else:
                key = _hash(key, str(step))
                self._apply(step, config)
            history.append({"created": created, "created_by": str(step), "empty_layer": step.verb not in
                            ("RUN", "COPY")})
        image = self.store.add_image(self._config(config, diff_ids, history, created), blobs, tags)
        emit(f"Successfully built {image.id[7:19]}\n")
        for tag in image.tags:
            emit(f"Successfully tagged {tag}\n")
        return image

    # steps -------------------------------------------------------------------------------
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
        elif step.verb == "WORKDIR":
            config["WorkingDir"] = os.path.join(config.get("WorkingDir") or "/", step.args[0])
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

    def _copy(self, step: Instruction, context: Path, config: dict[str, Any]) -> dict[str, Any]:
        *sources, dest = step.args
        if not dest.startswith("/"):
            dest = os.path.join(config.get("WorkingDir") or "/", dest)
        work = self.store.tmp / f"copy-{secrets.token_hex(8)}"
        tree = work / "tree"
        tree.mkdir(parents=True)
        try:
            into_dir = dest.endswith("/") or len(sources) > 1
            for rel in sources:
                src = _inside(context, rel, step.line)
                if src.is_dir():  # Docker copies a directory's contents, not the directory
                    shutil.copytree(src, tree / dest.lstrip("/"), symlinks=True, dirs_exist_ok=True)
                    continue
                target = tree / dest.lstrip("/") / src.name if into_dir else tree / dest.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target, follow_symlinks=False)
            tar_dir(tree, work / "layer.tar")
            return self._commit_layer(work / "layer.tar")
        finally:
            rmtree(work)

    def _run(self, step: Instruction, blobs: list[LayerBlob], diff_ids: list[str], config: dict[str, Any],
             emit: Emit) -> dict[str, Any]:
        """A container of the image so far runs the command; its upper dir becomes the layer."""
        interim = self.store.add_image(self._config(config, diff_ids, [], rfc3339()), blobs, [])
        engine = self.engine
        spec = ContainerSpec(image=interim.id, image_id="", entrypoint=list(step.args), network_mode="none",
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
            tar_dir(engine.containers.bundle(container.id) / "upper", work)
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
