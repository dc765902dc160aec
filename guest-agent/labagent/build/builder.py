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
from ..containers.logs import STDERR
from ..containers.model import CreateSpec
from ..errors import BadParameter, EngineError, NotFound
from ..fsutil import read_json, rfc3339, rmtree, write_json
from ..images.store import LAYER_TAR, Image, LayerBlob
from .containerfile import Instruction, parse, port
from .context import Context
from .copystep import copy_into
from .expand import expand
from .layer import ReservedName, tar_dir
from .options import PROXY_ARGS, BuildOptions
from .rootview import RootView, image_path

if TYPE_CHECKING:
    from ..interface import EngineInterface

Emit = Callable[[str], None]
MAX_LAYERS = 125  # Docker's limit too: overlay stacks no more lower dirs than that on one mount


class BuildError(EngineError):
    """A step failed; code is what Docker reports as errorDetail.code (a RUN's exit code)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message, 400)
        self.code = code



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


class Stage:
    """One FROM and the steps after it, as the build runs them."""

    def __init__(self, steps: list[Instruction]) -> None:
        self.steps = steps
        self.name = steps[0].args[1] if len(steps[0].args) > 1 else ""


def _split(steps: list[Instruction]) -> tuple[list[Instruction], list[Stage]]:
    """The ARGs before the first FROM (for FROM lines only) and the stages."""
    first = next(i for i, s in enumerate(steps) if s.verb == "FROM")
    stages: list[Stage] = []
    for index, step in enumerate(steps[first:], first):
        if step.verb == "FROM":
            stages.append(Stage([step]))
        else:
            stages[-1].steps.append(step)
        del index
    return steps[:first], stages


def _duration(line: int, name: str, text: str) -> int:
    """A HEALTHCHECK duration such as `30s` or `1m30s`, in nanoseconds."""
    units = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    total, number, i = 0, "", 0
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            number += text[i]
            i += 1
            continue
        unit = next((u for u in ("ns", "us", "ms", "s", "m", "h") if text.startswith(u, i)
                     and not (u == "m" and text.startswith("ms", i))), "")
        if not unit or not number:
            raise BadParameter(f"Containerfile line {line}: HEALTHCHECK --{name}: invalid duration {text!r}")
        try:
            total += int(float(number) * units[unit])
        except ValueError:
            raise BadParameter(f"Containerfile line {line}: HEALTHCHECK --{name}: invalid duration {text!r}") from None
        number, i = "", i + len(unit)
    if number or not text:
        raise BadParameter(f"Containerfile line {line}: HEALTHCHECK --{name}: invalid duration {text!r}")
    return total


class Builder:
    def __init__(self, engine: EngineInterface) -> None:
        self.engine = engine
        self.store = engine.images
        self.cache = engine.root / "build-cache"
        self.cache.mkdir(exist_ok=True)
        self.options = BuildOptions()
        self.use_cache = True
        self.used_args: set[str] = set()
        self.aux: Emit = lambda _image_id: None

    def build(self, context: Path, text: str, tags: list[str] | BuildOptions, emit: Emit,
              aux: Emit | None = None) -> Image:
        options = tags if isinstance(tags, BuildOptions) else BuildOptions(tags=list(tags))
        self.options = options
        if aux is not None:
            self.aux = aux
        self.use_cache = not options.nocache
        if options.cache_from is not None:  # only when one of the named images is here
            self.use_cache = self.use_cache and any(self._exists(ref) for ref in options.cache_from)
        steps = parse(text)
        with open_tree(context) as fd:
            return self._build(Context(fd), steps, emit)

    def _exists(self, ref: str) -> bool:
        try:
            self.store.resolve(ref)
        except NotFound:
            return False
        return True

    def _build(self, context: Context, steps: list[Instruction], emit: Emit) -> Image:
        globals_, stages = _split(steps)
        target = len(stages) - 1
        if self.options.target:
            names = [s.name for s in stages]
            if self.options.target.lower() not in names:
                raise BadParameter(f"target stage {self.options.target!r} could not be found")
            target = names.index(self.options.target.lower())
        total = len(globals_) + sum(len(s.steps) for s in stages[:target + 1])
        meta: dict[str, str] = {}  # ARGs before FROM: their values, for FROM lines
        number = 0
        for step in globals_:
            number += 1
            emit(f"Step {number}/{total} : {step}\n")
            self._arg(step, meta, meta)
        built: dict[str, Image] = {}
        image: Image | None = None
        try:
            for index, stage in enumerate(stages[:target + 1]):
                image, number = self._stage(context, stage, meta, built, number, total, emit,
                                            final=index == target)
                built[str(index)] = image
                if stage.name:
                    built[stage.name] = image
            assert image is not None
            unused = sorted(set(self.options.buildargs) - self.used_args - PROXY_ARGS)
            if unused:
                emit(f"[Warning] One or more build-args {unused} were not consumed\n")
            return image
        finally:
            for other in built.values():
                if image is None or other.id != image.id:
                    self.store.forget_dangling(other.manifest_digest)

    def _arg(self, step: Instruction, args: dict[str, str], env: dict[str, str],
             outer: dict[str, str] | None = None) -> None:
        """ARG: the build arg given, else its default, else (in a stage) the global ARG's value."""
        name = step.args[0]
        self.used_args.add(name)
        if name in self.options.buildargs:
            args[name] = self.options.buildargs[name]
        elif len(step.args) > 1:
            args[name] = expand(step.args[1], env)
        elif outer is not None and name in outer:
            args[name] = outer[name]
        else:
            args.pop(name, None)

    def _stage(self, context: Context, stage: Stage, meta: dict[str, str], built: dict[str, Image],
               number: int, total: int, emit: Emit, final: bool) -> tuple[Image, int]:
        head = stage.steps[0]
        try:
            ref = expand(head.args[0], meta)
        except BadParameter as exc:
            raise _with_line(head, exc) from None
        base = built[ref.lower()] if ref.lower() in built else self.store.resolve(ref)
        manifest = read_json(self.store.blob_path(base.manifest_digest))
        blobs = [LayerBlob(m["digest"], m["size"], m.get("mediaType", LAYER_TAR)) for m in manifest["layers"]]
        diff_ids = list(base.diff_ids)
        config, history = _base_config(ref, base)
        if config.get("OnBuild"):
            raise BadParameter(f"Containerfile line {head.line}: base image {ref} has ONBUILD triggers, "
                               "which this builder does not run")
        key, created = _hash("FROM", base.id), base.created
        number += 1
        emit(f"Step {number}/{total} : {head}\n")
        emit(f" ---> {base.id[7:19]}\n")
        args: dict[str, str] = {}  # this stage's ARGs (a stage sees none from before unless re-declared)
        for step in stage.steps[1:]:
            number += 1
            emit(f"Step {number}/{total} : {step}\n")
            env = {**args, **dict(e.partition("=")[::2] for e in config.get("Env") or [])}
            try:
                if step.verb in ("RUN", "COPY", "ADD"):
                    key, entry = self._layer(step, key, context, blobs, diff_ids, config, args, env, emit)
                    blobs.append(LayerBlob(entry["blob"], entry["size"], LAYER_TAR))
                    diff_ids.append(entry["diff_id"])
                    created = entry["created"]
                    emit(f" ---> {entry['diff_id'][7:19]}\n")
                else:
                    if step.verb == "ARG":
                        self._arg(step, args, env, meta)
                    else:
                        self._apply(step, config, env)
                    key = _hash(key, str(step), json.dumps(sorted(args.items())))
                    self._meta_cache(key, emit)
            except BadParameter as exc:
                raise _with_line(step, exc) from None
            history.append({"created": created, "created_by": str(step), "empty_layer": step.verb not in
                            ("RUN", "COPY", "ADD")})
        if final and self.options.labels:
            config["Labels"] = {**(config.get("Labels") or {}), **self.options.labels}
        image = self.store.add_image(self._config(config, diff_ids, history, created), blobs,
                                     self.options.tags if final else [], parent=base.id)
        if final:
            self.aux(image.id)  # Docker's {"aux": {"ID": ...}}, before "Successfully built"
            emit(f"Successfully built {image.id[7:19]}\n")
            for tag in image.tags:
                emit(f"Successfully tagged {tag}\n")
        return image, number

    def _meta_cache(self, key: str, emit: Emit) -> None:
        """A metadata step's cache record: Docker reports `Using cache` for those too."""
        path = self.cache / f"{key}.meta"
        if self.use_cache and path.exists():
            emit(" ---> Using cache\n")
        else:
            path.touch()

    # steps -------------------------------------------------------------------------------
    def _layer(self, step: Instruction, key: str, context: Context, blobs: list[LayerBlob], diff_ids: list[str],
               config: dict[str, Any], args: dict[str, str], env: dict[str, str], emit: Emit
               ) -> tuple[str, dict[str, Any]]:
        """A RUN, COPY or ADD step's cache key and layer: from the cache, else made now."""
        if len(diff_ids) >= MAX_LAYERS:
            raise BadParameter(f"more than {MAX_LAYERS} layers: the image has {len(diff_ids)}")
        words = [expand(w, env) for w in step.args] if step.verb != "RUN" else list(step.args)
        if step.verb != "RUN":
            self._check_copy(step, context, words[:-1])
        extra = context.digest(words[:-1]) if step.verb != "RUN" else json.dumps(sorted(self._run_args(args)))
        key = _hash(key, str(step), extra, config.get("User") or "", json.dumps(config.get("Shell")))
        entry = self._cached(key) if self.use_cache else None
        if entry:
            emit(" ---> Using cache\n")
            return key, entry
        if step.verb == "RUN":
            entry = self._run(step, blobs, diff_ids, config, args, emit)
        else:
            entry = self._copy(words, context, diff_ids, config)
        write_json(self.cache / f"{key}.json", entry)
        return key, entry

    def _run_args(self, args: dict[str, str]) -> list[str]:
        """The build args a RUN sees: the declared ones, and the proxy ones given, declared or not."""
        out = {k: v for k, v in self.options.buildargs.items() if k in PROXY_ARGS}
        out.update(args)
        return [f"{k}={v}" for k, v in sorted(out.items())]

    @staticmethod
    def _check_copy(step: Instruction, context: Context, sources: list[str]) -> None:
        """What COPY/ADD cannot do here is refused, never done halfway."""
        if dict(step.options).get("from"):
            raise BadParameter(f"{step.verb} --from is not supported yet: copy from the build context")
        if step.verb != "ADD":
            return
        for source in sources:
            if "://" in source or source.startswith("git@"):
                raise BadParameter(f"ADD {source}: remote sources are not supported; download in a RUN step")
            if context.is_archive(source):
                raise BadParameter(f"ADD {source}: extracting a local archive is not supported; "
                                   "COPY it and RUN tar")

    @staticmethod
    def _apply(step: Instruction, config: dict[str, Any], env: dict[str, str]) -> None:
        """The metadata-only steps: they change the image config, not the filesystem."""
        def x(word: str) -> str:
            return expand(word, env)

        if step.verb == "ENV":
            current = [e for e in config.get("Env") or []]
            for name, value in zip(step.args[::2], step.args[1::2], strict=True):
                value = expand(value, env)  # the values from before this ENV, as in Docker
                current = [e for e in current if e.partition("=")[0] != name] + [f"{name}={value}"]
            config["Env"] = current
        elif step.verb == "LABEL":
            pairs = {x(k): x(v) for k, v in zip(step.args[::2], step.args[1::2], strict=True)}
            config["Labels"] = {**(config.get("Labels") or {}), **pairs}
        elif step.verb == "WORKDIR":  # relative to the one before; `..` stops at the image's /
            config["WorkingDir"] = image_path(x(step.args[0]), config.get("WorkingDir") or "/")
        elif step.verb == "EXPOSE":
            ports = [port(step.line, x(p)) for p in step.args]
            config["ExposedPorts"] = {**(config.get("ExposedPorts") or {}), **{p: {} for p in ports}}
        elif step.verb in ("CMD", "ENTRYPOINT"):
            argv = [*config["Shell"], step.raw] if step.shell and config.get("Shell") else list(step.args)
            config["Cmd" if step.verb == "CMD" else "Entrypoint"] = argv
            if step.verb == "ENTRYPOINT":
                config["Cmd"] = None  # Docker resets CMD when ENTRYPOINT changes
        elif step.verb == "USER":
            config["User"] = x(step.args[0])
        elif step.verb == "VOLUME":
            config["Volumes"] = {**(config.get("Volumes") or {}), **{image_path(x(v)): {} for v in step.args}}
        elif step.verb == "STOPSIGNAL":
            config["StopSignal"] = x(step.args[0])
        elif step.verb == "SHELL":
            config["Shell"] = list(step.args)
        elif step.verb == "ONBUILD":
            config["OnBuild"] = [*(config.get("OnBuild") or []), step.args[0]]
        elif step.verb == "HEALTHCHECK":
            if step.args == ("NONE",):
                config["Healthcheck"] = {"Test": ["NONE"]}
                return
            check: dict[str, Any] = {"Test": list(step.args)}
            names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                     "start-interval": "StartInterval"}
            for name, value in step.options:
                if name == "retries":
                    if not value.isdigit() or int(value) > 10**6:
                        raise BadParameter(f"HEALTHCHECK --retries: invalid number {value!r}")
                    check["Retries"] = int(value)
                else:
                    check[names[name]] = _duration(step.line, name, value)
            config["Healthcheck"] = check

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

    def _copy(self, words: list[str], context: Context, diff_ids: list[str], config: dict[str, Any]
              ) -> dict[str, Any]:
        """The sources, written into a fresh tree at their paths in the image so far, as one layer."""
        *sources, dest = words
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
             args: dict[str, str], emit: Emit) -> dict[str, Any]:
        """A container of the image so far runs the command; its upper dir becomes the layer."""
        interim = self.store.add_image(self._config(config, diff_ids, [], rfc3339()), blobs, [])
        engine = self.engine
        argv = [*config["Shell"], step.raw] if step.shell and config.get("Shell") else list(step.args)
        names = {e.partition("=")[0] for e in config.get("Env") or []}
        env = [e for e in self._run_args(args) if e.partition("=")[0] not in names]  # ENV wins over ARG
        spec = CreateSpec(image=interim.id, image_id="", entrypoint=argv, network_mode=self.options.network_mode,
                          workdir=config.get("WorkingDir") or "", env=env, user=config.get("User") or "")
        container = engine.lifecycle.create("", spec)
        work = self.store.tmp / f"run-{secrets.token_hex(8)}.tar"
        try:
            emit(f" ---> Running in {container.id[:12]}\n")
            engine.lifecycle.start(container.id)
            logfile = engine.containers.logfile(container.id)
            for entry in logfile.follow(0, lambda: not container.running, lambda: False):
                text = entry.data.decode("utf-8", "replace")
                emit(f"\x1b[91m{text}\x1b[0m" if entry.stream == STDERR else text)  # as Docker marks stderr
            done = engine.lifecycle.wait(container)
            if done.state.exit_code != 0:
                raise BuildError(f"Containerfile line {step.line}: The command '{' '.join(argv)}' "
                                 f"returned a non-zero code: {done.state.exit_code}", done.state.exit_code)
            try:
                tar_dir(engine.containers.bundle(container.id) / "upper", work)
            except ReservedName as exc:
                raise BuildError(f"Containerfile line {step.line}: RUN created {exc.message}") from None
            return self._commit_layer(work)
        finally:
            rmtree(work)
            if self.options.remove:
                engine.lifecycle.remove(container.id, force=True)
                self.store.forget_dangling(interim.manifest_digest)

    @staticmethod
    def _config(config: dict[str, Any], diff_ids: list[str], history: list[dict[str, Any]],
                created: str) -> bytes:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        data = {"architecture": arch, "os": "linux", "created": created, "config": config,
                "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}
        return json.dumps(data, sort_keys=True).encode()
