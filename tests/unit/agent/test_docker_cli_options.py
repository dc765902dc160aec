"""The real docker CLI's create options against the engine: honoured, or refused by name."""

from __future__ import annotations

import pytest

from .dockerhost import DOCKER, EngineProcess, start_engine

pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory):
    engine = start_engine(tmp_path_factory.mktemp("docker-options"))
    yield engine
    engine.docker("rm", "-f", *engine.docker("ps", "-aq").stdout.split())
    engine.stop()


def test_the_recorded_run_command_is_accepted(eng: EngineProcess) -> None:
    out = eng.docker("run", "-d", "--name", "x", "-p", "18089:80", "--memory", "64m", "busybox")
    assert out.returncode == 0, out.stderr
    fmt = "{{.HostConfig.Memory}} {{.HostConfig.OomScoreAdj}} {{.Config.User}}"
    assert eng.docker("inspect", "-f", fmt, "x").stdout.split() == ["67108864", "0"]


def test_privilege_reducing_options_are_kept(eng: EngineProcess) -> None:
    out = eng.docker("create", "--name", "reduced", "--user", "nobody:nogroup", "--cap-drop", "ALL",
                     "--cap-add", "NET_BIND_SERVICE", "--read-only", "--security-opt", "no-new-privileges",
                     "busybox", "true")
    assert out.returncode == 0, out.stderr
    fmt = "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}}"
    shown = eng.docker("inspect", "-f", fmt, "reduced").stdout.split()
    assert shown == ["nobody:nogroup", "true", "[ALL]", "[CAP_NET_BIND_SERVICE]"]


@pytest.mark.parametrize("option, field", [
    (["--cap-add", "SYS_ADMIN"], "CapAdd"), (["--sysctl", "kernel.shmmax=1;x"], "Sysctls"),
    (["--device", "/dev/null"], "Devices"), (["--ipc", "host"], "IpcMode"),
    (["--restart", "sometimes"], "restart"), (["--init"], "Init"),
    (["--dns-option", "nd ots"], "DnsOptions"), (["--link", "other:db"], "Links"),
    (["--security-opt", "seccomp=unconfined"], "SecurityOpt"), (["--oom-score-adj", "-500"], "OomScoreAdj"),
    (["--log-driver", "syslog"], "no log driver named 'syslog' is registered"),
    (["--log-opt", "max-size=1m"], "LogConfig"), (["--runtime", "runc"], "Runtime"),
])
def test_an_unsupported_option_is_refused_by_name(eng: EngineProcess, option: list[str], field: str) -> None:
    refused = eng.docker("create", *option, "busybox", "true")
    assert refused.returncode != 0 and field in refused.stderr, refused.stderr


def test_an_unknown_user_fails_at_start_in_dockers_words(eng: EngineProcess) -> None:
    out = eng.docker("run", "--name", "nouser", "--user", "nosuch", "busybox", "true")
    assert out.returncode != 0
    assert "unable to find user nosuch: no matching entries in passwd file" in out.stderr
    numeric = eng.docker("run", "--rm", "--user", "1000:1000", "busybox", "true")
    assert numeric.returncode == 0, numeric.stderr
