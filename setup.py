"""The wheel's packages: provisioner, labagent, and the top-level folders lab ships, carried inside it.

templates/, labs/ and guest-agent/ stay where the repository's layout keeps them; a wheel
carries them as provisioner/shipped/<name>/, where provisioner.paths finds them once
installed. labagent (guest-agent/labagent) is also a package of its own: the host imports
labagent.contract, what host and guest agree on. Everything else is in pyproject.toml, which
cannot list found packages and packages mapped from other folders together: that is the only
reason for this file.
"""

from setuptools import find_namespace_packages, find_packages, setup

# package in the wheel: (folder in the repository, which of its directories are shipped, all their files)
SHIPPED = {
    "provisioner.shipped.templates": ("templates", ["*"]),
    "provisioner.shipped.labs": ("labs", ["*"]),
    # What the agent's deploy archive is made of (provisioner/agent.py): the engine's package.
    "provisioner.shipped.guest_agent": ("guest-agent", ["labagent", "labagent.*"]),
}
# The guest agent as an importable package, for the host's `import labagent.contract`.
AGENT_PACKAGES = find_packages("guest-agent", include=["labagent", "labagent.*"])


def shipped_packages(package: str, folder: str, directories: list[str]) -> list[str]:
    """PACKAGE and each shipped directory of FOLDER as its subpackage: setuptools ships the files
    of listed packages only."""
    found = find_namespace_packages(folder, include=directories, exclude=["*__pycache__*"])
    return [package, *(f"{package}.{name}" for name in found)]


shipped = [name for package, (folder, dirs) in SHIPPED.items() for name in shipped_packages(package, folder, dirs)]

setup(
    packages=[*find_packages(include=["provisioner", "provisioner.*"]), *AGENT_PACKAGES, *shipped],
    package_dir={"labagent": "guest-agent/labagent",
                 **{package: folder for package, (folder, _dirs) in SHIPPED.items()}},
    package_data={"labagent.containers": ["*.json"], **{name: ["*"] for name in shipped}},
    exclude_package_data={name: ["*.pyc"] for name in shipped},
)
