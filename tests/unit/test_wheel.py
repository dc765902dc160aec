"""The wheel: built from the repository, installed into a fresh venv outside it, `lab` works there.

The wheel is built offline (no build isolation, .venv's setuptools) from a copy of the
tree, so nothing is written into the checkout. The temporary venv sees .venv's
dependencies through a .pth line (libvirt-python and the rest are not rebuilt); .pth
lines add directories only, so the checkout's editable provisioner is not importable there.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labagent import contract

from provisioner import agent, labfile, paths
from provisioner.images import recipe

pytestmark = pytest.mark.wheel

CHECKOUT = Path(__file__).resolve().parents[2]
# What the build reads; the tests, the venv and caches stay behind.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "provisioner", "templates", "labs", "guest-agent")

# Run by the temporary venv's python: what the installed package finds and builds.
PROBE = """
import io, json, tarfile
import labagent.contract
import provisioner
from provisioner import agent, labfile, paths, templating
from provisioner.images import recipe

data, version = agent.agent_archive()
with tarfile.open(fileobj=io.BytesIO(data)) as archive:
    members = sorted(archive.getnames())
env = templating.environment()
templates = sorted(env.list_templates())
for name in templates:
    if name.endswith(".j2"):
        env.get_template(name)
print(json.dumps({
    "provisioner": provisioner.__file__,
    "dirs": [str(paths.templates_dir()), str(paths.labs_dir()), str(paths.guest_agent_dir())],
    "version": version,
    "members": members,
    "templates": templates,
    "two_node": sorted(labfile.load("two-node").nodes),
    "image_keys": {name: r.cache_key() for name, r in recipe.RECIPES.items()},
    "contract": labagent.contract.__file__,
    "socket": labagent.contract.SOCKET,
}))
"""


@dataclass(frozen=True)
class Installed:
    venv: Path
    workdir: Path  # outside the checkout: the cwd of every command
    env: dict[str, str]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=self.workdir, env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)



def _run(*argv: str, cwd: Path) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}{result.stderr}"


def _copy_inputs(target: Path) -> None:
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", ".*", "*.egg-info")
    for name in BUILD_INPUTS:
        source = CHECKOUT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source, dist, venv, workdir = root / "source", root / "dist", root / "venv", root / "work"
    _copy_inputs(source)
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "-q")
    # setuptools>=70.1 in .venv builds the wheel by itself (./setup.sh --dev installs it).
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(source), cwd=root)
    (wheel,) = dist.glob("lab-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=root)
    _run(*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel), cwd=root)
    (venv_site,) = venv.glob("lib/python*/site-packages")
    (venv_site / "dot-venv-dependencies.pth").write_text("".join(f"{d}\n" for d in site.getsitepackages()))
    workdir.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    env.update(LAB_HOME=str(root / "home"), LAB_CACHE=str(root / "cache"),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return Installed(venv=venv, workdir=workdir, env=env)


@pytest.fixture(scope="module")
def probe(installed: Installed) -> dict[str, Any]:
    result = installed.run(str(installed.venv / "bin" / "python"), "-c", PROBE)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def _inside(path: str | Path, directory: Path) -> bool:
    return Path(path).resolve().is_relative_to(directory.resolve())


def test_the_installed_package_is_the_wheels_and_finds_its_folders_inside_itself(
    installed: Installed, probe: dict[str, Any]
) -> None:
    assert _inside(probe["provisioner"], installed.venv), probe["provisioner"]
    for found in probe["dirs"]:
        assert _inside(found, installed.venv) and not _inside(found, CHECKOUT), found
        assert Path(found).is_dir()


def test_the_wheel_carries_every_module_of_provisioner(installed: Installed) -> None:
    (package,) = installed.venv.glob("lib/python*/site-packages/provisioner")

    def modules(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*.py") if "shipped" not in p.relative_to(root).parts}

    missing = modules(CHECKOUT / "provisioner") - modules(package)
    assert not missing, f"not in the wheel (a directory without __init__.py?): {sorted(missing)}"


def test_the_packaged_templates_labs_and_image_files_are_the_checkouts(probe: dict[str, Any]) -> None:
    checkout_templates = sorted(str(p.relative_to(paths.templates_dir()))
                                for p in paths.templates_dir().rglob("*") if p.is_file())
    assert probe["templates"] == checkout_templates
    assert probe["two_node"] == sorted(labfile.load("two-node").nodes)
    # The same image cache serves a checkout and a wheel: the recipes hash the same files.
    assert probe["image_keys"] == {name: r.cache_key() for name, r in recipe.RECIPES.items()}


def test_the_agent_archive_from_the_wheel_is_the_checkouts(probe: dict[str, Any]) -> None:
    members = probe["members"]
    assert "labagent/server.py" in members and "labagent/contract.py" in members
    assert not [m for m in members if not m.startswith("labagent/")]  # the docker shim is a template
    assert not [m for m in members if m.startswith(("README", "pyproject", "lab_agent"))]
    _data, version = agent.agent_archive.__wrapped__()
    assert probe["version"] == version, "the wheel lacks (or adds) a file of the agent's archive"


def test_the_host_imports_the_contract_from_the_wheels_labagent_package(
    installed: Installed, probe: dict[str, Any]
) -> None:
    assert _inside(probe["contract"], installed.venv) and not _inside(probe["contract"], CHECKOUT)
    assert Path(probe["contract"]).parent.name == "labagent"  # a package of its own, not provisioner's copy
    assert probe["socket"] == contract.SOCKET
    (package,) = installed.venv.glob("lib/python*/site-packages/labagent")
    assert (package / "containers" / "seccomp.json").is_file()


def test_lab_runs_from_the_venv_outside_the_checkout(installed: Installed) -> None:
    lab = str(installed.venv / "bin" / "lab")
    result = installed.run(lab, "--help")
    assert result.returncode == 0, result.stderr
    assert "create" in result.stdout and "destroy" in result.stdout
    result = installed.run(lab, "image", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
