"""The guest CLI against the engine's socket."""

import pytest
from labagent import cli


@pytest.fixture
def labctl(client, capfd):
    def call(*args):
        code = cli.main(["-H", client.path, *args])
        out, err = capfd.readouterr()
        return code, out, err

    return call


def test_foreground_run_prints_output_and_returns_the_exit_code(labctl):
    code, out, err = labctl("run", "--name", "fg", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 6")
    assert (code, out, err) == (6, "hello\n", "oops\n")


def test_detached_run_ps_logs_exec_stop_rm(labctl):
    code, out, _ = labctl("run", "-d", "--name", "web", "-p", "18090:80", "-e", "GREETING=hi",
                          "--memory", "64m", "--cpus", "0.5", "--pids-limit", "20",
                          "busybox", "sh", "-c", "echo $GREETING; sleep 30")
    assert code == 0 and len(out.strip()) == 64
    code, out, _ = labctl("ps")
    assert "web" in out and "0.0.0.0:18090->80/tcp" in out and "Up" in out
    assert labctl("exec", "web", "sh", "-c", "exit 3")[0] == 3
    assert labctl("exec", "web", "echo", "inside")[1] == "inside\n"
    assert labctl("logs", "web")[1] == "hi\n"
    code, out, _ = labctl("inspect", "web")
    assert '"Memory": 67108864' in out and '"NanoCpus": 500000000' in out
    assert labctl("stop", "-t", "1", "web")[0] == 0
    assert "Exited (143)" in labctl("ps", "-a")[1]
    assert labctl("rm", "web")[0] == 0
    assert "web" not in labctl("ps", "-a")[1]


def test_errors_are_one_line(labctl):
    code, _, err = labctl("run", "nosuchimage")
    assert code != 0 and err == "error: No such image: nosuchimage:latest\n"
    code, _, err = labctl("run", "--memory", "64Q", "busybox", "true")
    assert code != 0 and err.startswith("error: invalid size") and err.count("\n") == 1
    labctl("run", "-d", "--name", "dup", "busybox", "sleep", "30")
    code, _, err = labctl("run", "--name", "dup", "busybox", "true")
    assert code != 0 and "already in use" in err
    code, _, err = labctl("logs", "nobody")
    assert (code, err) == (1, "error: No such container: nobody\n")


def test_images_and_load(labctl, tmp_path):
    from .conftest import docker_save, tar_bytes

    archive = tmp_path / "img.tar"
    archive.write_bytes(docker_save([tar_bytes({"f": b"1"})], ["mine:2"]))
    assert labctl("load", "-i", str(archive))[1] == "Loaded image: mine:2\n"
    out = labctl("images")[1]
    assert "busybox" in out and "mine" in out and out.splitlines()[0].startswith("REPOSITORY")
