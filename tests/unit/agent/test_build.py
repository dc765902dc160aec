"""Builds: Containerfile parsing, cache keys, and layers made by RUN (fake crun) and COPY."""

from __future__ import annotations

import tarfile

import pytest
from labagent.build.builder import Builder, BuildError
from labagent.build.containerfile import parse
from labagent.errors import BadParameter


def test_parse_forms_continuations_and_comments() -> None:
    steps = parse("# c\nFROM busybox\nRUN echo a \\\n    && echo b\nCMD [\"sh\", \"-c\", \"x\"]\n"
                  "ENV A=1 B=\"two words\"\nENV C legacy value\nEXPOSE 80 53/udp\nLABEL k=v\n")
    assert [s.verb for s in steps] == ["FROM", "RUN", "CMD", "ENV", "ENV", "EXPOSE", "LABEL"]
    assert steps[1].args == ("/bin/sh", "-c", "echo a && echo b") and steps[1].line == 3
    assert steps[2].args == ("sh", "-c", "x") and not steps[2].shell
    assert steps[3].args == ("A", "1", "B", "two words") and steps[4].args == ("C", "legacy value")
    assert steps[5].args == ("80/tcp", "53/udp")


@pytest.mark.parametrize(("text", "message"), [
    ("FROM busybox\n\nFROB x\n", "line 3: unknown instruction 'FROB'"),
    ("RUN echo\n", "line 1: the first instruction must be FROM"),
    ("FROM busybox\nCMD [\"sh\",\n", "line 2: CMD: invalid JSON"),
    ("FROM busybox\nEXPOSE 99999\n", "line 2: EXPOSE: invalid port"),
    ("FROM busybox\nCOPY --chown=x a b\n", "line 2: COPY --chown is not supported"),
    ("FROM busybox\nENV =x\n", "line 2: ENV"),
])
def test_bad_lines_are_reported_with_their_number(text: str, message: str) -> None:
    with pytest.raises(BadParameter, match=message):
        parse(text)


def build(engine, context, text, tag):
    lines: list[str] = []
    image = Builder(engine).build(context, text, [tag], lines.append)
    return image, "".join(lines)


def test_run_and_copy_make_layers_and_the_cache_is_shared(engine, tmp_path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello\n")
    first = "FROM busybox\nENV GREETING=hi\nRUN echo built > made.txt\nCOPY hello.txt /app/\nCMD [\"cat\"]\n"
    one, out = build(engine, ctx, first, "one")
    assert "Using cache" not in out and "Running in" in out and "Successfully tagged one:latest" in out
    base = engine.images.resolve("busybox")
    assert one.diff_ids[:1] == base.diff_ids and len(one.diff_ids) == 3  # two layers on busybox
    run_layer, copy_layer = (engine.images.layer_dir(d) for d in one.diff_ids[1:])
    assert (run_layer / "made.txt").read_text() == "built\n"
    assert (copy_layer / "app" / "hello.txt").read_text() == "hello\n"
    config = one.config["config"]
    assert "GREETING=hi" in config["Env"] and config["Cmd"] == ["cat"]
    assert engine.containers.all() == []  # the RUN container is gone
    assert [i.tags for i in engine.images.images()] == [["busybox:latest"], ["one:latest"]]

    again, out = build(engine, ctx, first, "one")
    assert out.count("Using cache") == 4 and again.id == one.id  # ENV and CMD too, as Docker reports

    second = "FROM busybox\nENV GREETING=hi\nRUN echo built > made.txt\nRUN echo other > other.txt\n"
    two, out = build(engine, ctx, second, "two")
    assert out.count("Using cache") == 2
    assert two.diff_ids[:2] == one.diff_ids[:2]
    assert engine.images.layer_dirs(two)[:2] == engine.images.layer_dirs(one)[:2]  # same dirs on disk
    assert (engine.images.layer_dirs(two)[2] / "other.txt").exists()

    (ctx / "hello.txt").write_text("changed\n")  # COPY's key follows its content
    _, out = build(engine, ctx, first, "one")
    assert out.count("Using cache") == 2  # ENV and RUN; COPY and what follows it are made again


def test_a_failing_run_names_its_line(engine, tmp_path) -> None:
    with pytest.raises(BuildError, match="line 2: The command .* returned a non-zero code: 3"):
        build(engine, tmp_path, "FROM busybox\nRUN exit 3\n", "bad")
    assert engine.containers.all() == []


def test_build_through_the_api_streams_progress(client, tmp_path) -> None:
    import io
    import json

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"FROM busybox\nRUN echo x > x\n"
        info = tarfile.TarInfo("Containerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    resp = client.request("POST", "/build", {"t": "api:1"}, raw=buf.getvalue(), length=buf.tell())
    lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert lines[0] == {"stream": "Step 1/2 : FROM busybox\n"}
    assert lines[1]["stream"].startswith(" ---> ")
    assert lines[-3]["aux"]["ID"].startswith("sha256:")  # before "Successfully built", as Docker sends it
    assert lines[-2]["stream"] == f"Successfully built {lines[-3]['aux']['ID'][7:19]}\n"
    assert lines[-1] == {"stream": "Successfully tagged api:1\n"}
    assert client.json("GET", "/images/api:1/json")["RepoTags"] == ["api:1"]
