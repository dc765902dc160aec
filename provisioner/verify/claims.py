"""The isolation claims `lab verify` proves: the one list verify, the report and the README read.

A claim's checks are the test functions of `checks/test_<id>.py`. Adding a claim is one
`Claim` here plus that module; verify groups its results under the claim's title,
`lab report` shows its verdict in the isolation row, and a unit test fails until the
README's table (`markdown()`) lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The design's claims, by number: what a lab must demonstrate. 6 is shown by the docker CLI
# reaching each node's engine, 7 by `lab report`'s measurements; 1 to 5 by these checks.
DEMONSTRATES: dict[int, str] = {
    1: "A VM virtualises hardware and runs its own kernel",
    2: "A container is an isolated process on the guest's kernel",
    3: "Namespaces give each container its own view",
    4: "cgroups limit resources",
    5: "Union filesystems layer images",
    6: "Engine and client are separate",
    7: "Containers start in well under a second; VMs take far longer",
}

Side = Literal["vm", "container"]


@dataclass(frozen=True)
class Claim:
    id: str
    """Names the check module, checks/test_<id>.py."""
    title: str
    """The claim's name in `lab verify`'s table and --json, verify.json and `lab report`."""
    demonstrates: tuple[int, ...]
    """The design's claims (keys of DEMONSTRATES) its checks give evidence for."""
    side: Side
    """The column of `lab report`'s isolation row the verdict goes in."""
    checks: str
    """What the checks look at, in a few words, for the README."""

    @property
    def module(self) -> str:
        return f"test_{self.id}"


CLAIMS: tuple[Claim, ...] = (
    Claim("vm_isolation", "VM isolation", (1,), "vm",
          "own kernels, no shared processes or files, only the declared links, nothing beyond the forwards"),
    Claim("containers", "shared kernel and namespaces", (2, 3), "container",
          "the node's kernel, PID 1 an ordinary node process, each namespace the container's own, "
          "the bridge and published ports"),
    Claim("cgroups", "cgroups", (4,), "container", "memory limits OOM-kill, pids limits stop forks, CPU quotas cap"),
    Claim("layers", "layers", (5,), "container",
          "read-only layers shared by containers of one image, writes only in the container's upper dir, "
          "gone after rm"),
    Claim("hardening", "hardening", (2,), "container",
          "no mount, no module loading, no raw devices, no renaming the node"),
)


def claim_of(module: str) -> Claim | None:
    """The claim whose checks live in the module named `module` (a file stem), if any."""
    return next((claim for claim in CLAIMS if claim.module == module), None)


def titles(side: Side) -> tuple[str, ...]:
    return tuple(claim.title for claim in CLAIMS if claim.side == side)


def problems(collected: list[tuple[str, str]]) -> list[str]:
    """What keeps the collected (module, check) pairs and the registry from matching one to one."""
    found = [f"{module}::{check} belongs to no claim" for module, check in collected if claim_of(module) is None]
    modules = {module for module, _ in collected}
    found += [f"claim {claim.title!r} has no checks in {claim.module}.py" for claim in CLAIMS
              if claim.module not in modules]
    return found


def markdown() -> str:
    """The README's table of claims, which a unit test holds to this registry."""
    lines = ["| claim | demonstrates | checks (`provisioner/verify/checks/`) |", "|---|---|---|"]
    for claim in CLAIMS:
        shown = "; ".join(f"{n}. {DEMONSTRATES[n]}" for n in claim.demonstrates)
        lines.append(f"| {claim.title} | {shown} | `{claim.module}.py`: {claim.checks} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m provisioner.verify.claims: the README's table
    print(markdown(), end="")
