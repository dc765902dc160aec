"""docker build as docker-py and the docker CLI drive it: progress shapes, query options, instructions.

RUN steps run on this host under the fake runtime: every command here touches relative paths only.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest
from labagent.build.expand import expand
from labagent.build.ignore import ignored
from labagent.build.options import bounded_pairs
from labagent.errors import BadParameter

from .dockerhost import DOCKER, EngineProcess, start_engine

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory):
    engine = start_engine(tmp_path_factory.mktemp("buildfid"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    client = docker.DockerClient(base_url=eng.host, timeout=30)
    yield client
    for c in client.containers.list(all=True):
        c.remove(force=True)
    client.close()


def script(*lines: str) -> io.BytesIO:
    return io.BytesIO("\n".join(lines).encode())


def stream(sdk, **kwargs) -> list[dict]:
    return list(sdk.api.build(decode=True, **kwargs))


def files(sdk, image: str) -> dict[str, bytes | None]:
    """The image's files as `docker save` gives them (path -> content, None for a directory), the
    layers applied in order: containers of the fake runtime do not see their image's root, so
    the image is read, not run."""
    tree: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(sdk.images.get(image).save()))) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=saved.extractfile(layer)) as tar:
                for member in tar:
                    name = "/" + member.name.strip("./").removesuffix("/")
                    base = name.rsplit("/", 1)
                    if base[-1].startswith(".wh."):
                        gone = base[0] + "/" + base[-1][4:]
                        tree = {k: v for k, v in tree.items() if k != gone and not k.startswith(gone + "/")}
                        continue
                    handle = tar.extractfile(member) if member.isfile() else None
                    tree[name] = handle.read() if handle else None
    return tree


def ls(sdk, image: str, directory: str) -> list[str]:
    """The names directly in directory of the image."""
    tree = files(sdk, image)
    prefix = directory.rstrip("/") + "/"
    return sorted({k[len(prefix):].split("/")[0] for k in tree if k.startswith(prefix)})


# progress shapes ---------------------------------------------------------------------------
def test_progress_messages_have_dockers_shapes_and_order(sdk) -> None:
    lines = stream(sdk, fileobj=script("FROM busybox", "ENV A=1", "CMD [\"true\"]"), tag="shapes:1")
    assert all(set(line) <= {"stream", "aux"} for line in lines)
    assert lines[0] == {"stream": "Step 1/3 : FROM busybox\n"}
    assert lines[1]["stream"].startswith(" ---> ") and len(lines[1]["stream"]) == len(" ---> ") + 13
    image_id = sdk.images.get("shapes:1").id
    assert lines[-3] == {"aux": {"ID": image_id}}
    assert lines[-2] == {"stream": f"Successfully built {image_id[7:19]}\n"}
    assert lines[-1] == {"stream": "Successfully tagged shapes:1\n"}
    image, _ = sdk.images.build(fileobj=script("FROM busybox", "LABEL x=y"), tag="shapes:2")
    assert image.tags == ["shapes:2"] and image.labels == {"x": "y"}


def test_a_failing_run_reports_errordetail_with_its_exit_code(sdk) -> None:
    lines = stream(sdk, fileobj=script("FROM busybox", "RUN exit 7"), tag="fails:1", nocache=True)
    assert lines[-1]["errorDetail"]["code"] == 7
    assert isinstance(lines[-1]["error"], str) and "non-zero code: 7" in lines[-1]["error"]
    with pytest.raises(docker.errors.BuildError, match="non-zero code: 7"):
        sdk.images.build(fileobj=script("FROM busybox", "RUN exit 7"))
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.images.get("fails:1")


def test_stderr_of_a_run_is_marked_as_docker_marks_it(sdk) -> None:
    lines = stream(sdk, fileobj=script("FROM busybox", "RUN echo to-stderr >&2; echo to-stdout"), nocache=True)
    texts = [line.get("stream") for line in lines]
    assert "\x1b[91mto-stderr\n\x1b[0m" in texts and "to-stdout\n" in texts


# the context ------------------------------------------------------------------------------
def test_gzip_context_and_empty_dockerignore_lines(sdk, tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nADD . /test\n")
    (tmp_path / "data.txt").write_text("x")
    (tmp_path / ".dockerignore").write_text("   \n\n\t\t\n")
    lines = stream(sdk, path=str(tmp_path), gzip=True, nocache=True, tag="gz:1")
    assert "Successfully built" in lines[-2]["stream"] and "Successfully tagged" in lines[-1]["stream"]
    assert ls(sdk, "gz:1", "/test") == [".dockerignore", "Dockerfile", "data.txt"]
    assert files(sdk, "gz:1")["/test/data.txt"] == b"x"


def test_dockerignore_excludes_with_exceptions_and_drops_the_dockerfile(sdk, tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY . /test\n")
    (tmp_path / ".dockerignore").write_text("secret\nDockerfile\n.dockerignore\n**/*.log\n"
                                            "!secret/keep\n # comment-ish\n#*\n")
    for name in ("secret/drop", "secret/keep", "a/b/c.log", "a/b/kept", "#hash"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    sdk.images.build(path=str(tmp_path), tag="ign:1")
    tree = files(sdk, "ign:1")
    found = sorted(k for k, v in tree.items() if k.startswith("/test/") and v is not None)
    assert found == ["/test/#hash", "/test/a/b/kept", "/test/secret/keep"]


@pytest.mark.parametrize("where", ["root", "nested", "absolute-inside", "outside"])
def test_dockerfile_named_in_and_out_of_the_context(sdk, tmp_path, where) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "file.txt").write_text("hello")
    text = "FROM busybox\nCOPY . /src\nWORKDIR /src\n"
    if where == "outside":
        (tmp_path / "Dockerfile").write_text(text)
        (ctx / ".dockerignore").write_text(".dockerignore\n")
        name, expect = str(tmp_path / "Dockerfile"), ["file.txt"]
    elif where == "nested":
        (ctx / "sub" / "deeper").mkdir(parents=True)
        (ctx / "sub" / "deeper" / "my.dockerfile").write_text(text)
        name, expect = "sub/deeper/my.dockerfile", ["file.txt", "sub"]
    else:
        (ctx / "my.dockerfile").write_text(text)
        name = "my.dockerfile" if where == "root" else str(ctx / "my.dockerfile")
        expect = ["file.txt", "my.dockerfile"]
    lines = stream(sdk, path=str(ctx), dockerfile=name, tag=f"df-{where}:1")
    assert "Successfully tagged" in lines[-1]["stream"], lines
    assert ls(sdk, f"df-{where}:1", "/src") == sorted(expect)
    assert sdk.api.inspect_image(f"df-{where}:1")["Config"]["WorkingDir"] == "/src"


# query options ----------------------------------------------------------------------------
def test_buildargs_fill_args_and_labels_are_added(sdk) -> None:
    text = script("FROM busybox", "ARG who", "ARG greeting=hello", "ARG unset_one",
                  "RUN test \"$greeting-$who\" = \"hello-nobody\"",
                  "USER $who", "LABEL say=\"${greeting} ${who}\" other=${unset_one:-fallback}")
    sdk.images.build(fileobj=text, tag="args:1", buildargs={"who": "nobody"}, labels={"from": "query"})
    config = sdk.api.inspect_image("args:1")["Config"]
    assert config["User"] == "nobody"
    assert config["Labels"] == {"say": "hello nobody", "other": "fallback", "from": "query"}
    assert not any(e.startswith(("who=", "greeting=")) for e in config["Env"] or [])  # ARGs are not kept


def test_proxy_buildargs_reach_run_undeclared(sdk) -> None:
    text = script("FROM busybox", "RUN test \"$HTTP_PROXY\" = b && test \"$no_proxy\" = d")
    lines = stream(sdk, fileobj=text, buildargs={"HTTP_PROXY": "b", "no_proxy": "d"}, nocache=True)
    assert "error" not in lines[-1], lines[-1]


def test_cache_from_uses_the_cache_only_with_a_known_image(sdk) -> None:
    text = "\n".join(["FROM busybox", "ENV FOO=bar", "RUN touch baz", "RUN touch bax"]).encode()
    sdk.images.build(fileobj=io.BytesIO(text), tag="cache1")

    def hits(**kw) -> int:
        return sum("Using cache" in line.get("stream", "") for line in stream(sdk, fileobj=io.BytesIO(text), **kw))

    assert hits(tag="cache2", cache_from=["cache1"]) == 3
    assert hits(tag="cache3", cache_from=["no-such-image"]) == 0
    assert hits(tag="cache4", nocache=True) == 0


def test_target_builds_only_up_to_the_named_stage(sdk) -> None:
    text = script("FROM busybox AS first", "RUN touch made-in-first", "FROM first AS second",
                  "COPY --from=first made-in-first .", "ONBUILD RUN echo later")
    sdk.images.build(fileobj=text, target="first", tag="target:1")
    assert not sdk.api.inspect_image("target:1")["Config"].get("OnBuild")
    assert "made-in-first" in ls(sdk, "target:1", "")
    with pytest.raises(docker.errors.BuildError, match="target stage 'nope' could not be found"):
        sdk.images.build(fileobj=script("FROM busybox AS a"), target="nope")
    with pytest.raises(docker.errors.BuildError, match="line 4: COPY --from is not supported"):
        sdk.images.build(fileobj=script("FROM busybox AS first", "RUN touch f", "FROM busybox",
                                        "COPY --from=first f ."))


def test_global_args_reach_from_and_redeclared_stage_args(sdk) -> None:
    text = script("ARG BASE=busybox", "ARG V=global", "FROM ${BASE} AS one", "ARG V", "ARG W",
                  "ENV E1=$V E2=${W:-none}")
    image, _ = sdk.images.build(fileobj=text, tag="globals:1")
    env = image.attrs["Config"]["Env"]
    assert "E1=global" in env and "E2=none" in env


def test_a_stage_builds_on_an_earlier_one(sdk) -> None:
    text = script("FROM busybox AS base", "ENV FROM_BASE=1", "FROM base", "LABEL two=2")
    image, _ = sdk.images.build(fileobj=text, tag="stages:1")
    assert "FROM_BASE=1" in image.attrs["Config"]["Env"] and image.labels == {"two": "2"}


def test_network_mode_is_used_for_run(sdk) -> None:
    lines = stream(sdk, fileobj=script("FROM busybox", "RUN true"), network_mode="none", nocache=True)
    assert "Successfully built" in lines[-1]["stream"]
    lines = stream(sdk, fileobj=script("FROM busybox", "RUN true"), network_mode="no-such-net", nocache=True)
    assert "errorDetail" in lines[-1] and "no-such-net" in lines[-1]["error"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"extra_hosts": {"a.test": "127.0.0.1"}}, "extrahosts"),
    ({"squash": True}, "squash"),
    ({"container_limits": {"memory": 1 << 26}}, "memory"),
    ({"shmsize": 1 << 26}, "shmsize"),
    ({"platform": "linux/s390x"}, "platform"),
])
def test_options_this_builder_cannot_honour_are_refused_naming_them(sdk, kwargs, field) -> None:
    with pytest.raises(docker.errors.APIError) as err:
        stream(sdk, fileobj=script("FROM busybox"), **kwargs)
    assert err.value.status_code == 400 and field in str(err.value.explanation)


def test_buildargs_and_labels_are_bounded(sdk) -> None:
    with pytest.raises(docker.errors.APIError) as err:  # the request line's own bound comes first
        stream(sdk, fileobj=script("FROM busybox"), buildargs={f"a{i}": "x" for i in range(1001)})
    assert err.value.status_code == 414
    with pytest.raises(BadParameter, match="buildargs: more than 1000 entries"):
        bounded_pairs("buildargs", {f"a{i}": "x" for i in range(1001)})
    with pytest.raises(BadParameter, match="labels: more than 1048576 bytes"):
        bounded_pairs("labels", {"a": "x" * (1 << 20)})
    with pytest.raises(BadParameter, match="must map a name to a string"):
        bounded_pairs("labels", {"a": 1})
    assert bounded_pairs("buildargs", {"a": None, "b": "1"}) == {"b": "1"}


def test_rm_false_keeps_the_run_containers_as_docker_does(sdk) -> None:
    before = {c.id for c in sdk.containers.list(all=True)}
    stream(sdk, fileobj=script("FROM busybox", "RUN echo kept"), nocache=True, rm=False)
    kept = [c for c in sdk.containers.list(all=True) if c.id not in before]
    assert len(kept) == 1 and kept[0].status == "exited"
    stream(sdk, fileobj=script("FROM busybox", "RUN echo gone"), nocache=True, rm=True)
    assert len(sdk.containers.list(all=True)) == len(before) + 1


# instructions -----------------------------------------------------------------------------
def test_config_instructions_are_recorded(sdk) -> None:
    text = script("FROM busybox", "USER 1000:1000", "VOLUME [\"/data\", \"/logs\"]", "STOPSIGNAL SIGINT",
                  "HEALTHCHECK --interval=5s --timeout=1m30s --retries=4 CMD [\"true\"]",
                  "SHELL [\"/bin/sh\", \"-ec\"]", "CMD echo hi", "ONBUILD RUN echo later",
                  "EXPOSE 8080 53/udp", "LABEL a=1 b=\"two words\"")
    sdk.images.build(fileobj=text, tag="cfg:1")
    config = sdk.api.inspect_image("cfg:1")["Config"]
    assert config["User"] == "1000:1000" and config["StopSignal"] == "SIGINT"
    assert config["Volumes"] == {"/data": {}, "/logs": {}}
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5 * 10**9, "Timeout": 90 * 10**9,
                                     "Retries": 4}
    assert config["Shell"] == ["/bin/sh", "-ec"] and config["Cmd"] == ["/bin/sh", "-ec", "echo hi"]
    assert config["OnBuild"] == ["RUN echo later"]
    assert config["Labels"] == {"a": "1", "b": "two words"}
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    with pytest.raises(docker.errors.BuildError, match="ONBUILD triggers"):
        sdk.images.build(fileobj=script("FROM cfg:1"))
    sdk.images.build(fileobj=script("FROM busybox", "HEALTHCHECK CMD true || exit 1"), tag="cfg:2")
    assert sdk.api.inspect_image("cfg:2")["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "true || exit 1"]}


def test_add_copies_local_files_and_refuses_urls_and_archives(sdk, tmp_path) -> None:
    (tmp_path / "plain.txt").write_text("plain")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nADD plain.txt /in/\n")
    sdk.images.build(path=str(tmp_path), tag="add:1")
    assert files(sdk, "add:1")["/in/plain.txt"] == b"plain"
    with pytest.raises(docker.errors.BuildError, match="line 2: ADD http://example.invalid/x: remote"):
        sdk.images.build(fileobj=script("FROM busybox", "ADD http://example.invalid/x /x"))
    subprocess.run(["tar", "-czf", "a.tgz", "plain.txt"], cwd=tmp_path, check=True)
    (tmp_path / "Dockerfile").write_text("FROM busybox\nADD a.tgz /in/\n")
    with pytest.raises(docker.errors.BuildError, match="line 2: ADD a.tgz: extracting a local archive"):
        sdk.images.build(path=str(tmp_path))


@pytest.mark.parametrize(("line", "message"), [
    ("RUN --mount=type=cache,target=x true", "line 2: RUN --mount is not supported"),
    ("COPY --chmod=644 a b", "line 2: COPY --chmod is not supported"),
    ("MAINTAINER me", "line 2: unknown instruction 'MAINTAINER'"),
    ("FROM --platform=linux/arm64 busybox", "line 2: FROM --platform is not supported"),
    ("HEALTHCHECK --interval=soon CMD true", "line 2: HEALTHCHECK --interval: invalid duration"),
    ("ONBUILD FROM busybox", "line 2: ONBUILD FROM is not allowed"),
    ("USER ${broken", "line 2: missing '}'"),
])
def test_what_is_not_implemented_is_refused_naming_the_line(sdk, line, message) -> None:
    with pytest.raises((docker.errors.BuildError, docker.errors.APIError), match=message):
        sdk.images.build(fileobj=script("FROM busybox", line))


def test_too_many_stages_are_refused(sdk) -> None:
    with pytest.raises((docker.errors.BuildError, docker.errors.APIError), match="more than 50 build stages"):
        sdk.images.build(fileobj=script(*["FROM busybox"] * 51))


# the docker CLI ---------------------------------------------------------------------------
@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_the_classic_cli_builds_with_args_target_and_labels(eng: EngineProcess, tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox AS one\nARG V=default\nLABEL v=$V\n"
                                         "FROM one\nLABEL two=yes\n")
    out = subprocess.run([DOCKER, "build", "--build-arg", "V=given", "--label", "cli=1", "--target", "one",
                          "-t", "cli:1", str(tmp_path)], env={**eng.env(), "DOCKER_BUILDKIT": "0"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Successfully tagged cli:1" in out.stdout
    labels = subprocess.run([DOCKER, "inspect", "-f", "{{json .Config.Labels}}", "cli:1"], env=eng.env(),
                            capture_output=True, text=True, timeout=60).stdout
    assert labels.strip() == '{"cli":"1","v":"given"}'
    out = subprocess.run([DOCKER, "build", "--add-host", "a.test:127.0.0.1", str(tmp_path)],
                         env={**eng.env(), "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "extrahosts" in out.stderr


# units ------------------------------------------------------------------------------------
def test_expansion_forms() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand("$A-${A}-${B:-d}-${A:+set}-${B:+x}-\\$A-$", env) == "1-1-d-set--$A-$"
    assert expand("${EMPTY:-fb}", env) == "fb"
    with pytest.raises(BadParameter, match="bad substitution"):
        expand("${A B}", env)


@pytest.mark.parametrize(("lines", "path", "want"), [
    (["a"], "a/b/c", True),
    (["a", "!a/b"], "a/b/c", False),
    (["**/*.log"], "x/y/z.log", True),
    (["**/*.log"], "z.log", True),
    (["*.log"], "x/z.log", False),
    (["/abs/"], "abs", True),
    (["  spaced  "], "spaced", True),
    (["#c"], "#c", False),
    (["d?"], "dx", True),
    (["[ab]c"], "bc", True),
])
def test_dockerignore_rules(lines, path, want) -> None:
    assert ignored(lines, path) is want


def test_fake_runs_stay_relative() -> None:
    assert not os.path.exists("made-in-first")  # the fake ran RUN in the rootfs, not here
