"""The project's exception hierarchy; the CLI turns each into a one-line message.

A failure's cause stays chained (`raise ... from error`): `lab --debug` prints it.
"""


class LabError(Exception):
    """Base of every error `lab` reports to its user."""

    exit_code = 1


class UserInputError(LabError):
    """Bad input: a lab file, a name, an option. Nothing was created."""

    exit_code = 2


class LabFileError(UserInputError):
    """A lab file that cannot be read or does not validate."""


class MissingToolError(UserInputError):
    """A host program `lab` needs is not installed."""


class HypervisorError(LabError):
    """libvirt refused or failed an operation."""


class UnreachableHypervisorError(UserInputError):
    """The libvirt URI cannot be opened."""


class LabExistsError(UserInputError):
    """A lab of that name already has state."""


class LabNotFoundError(UserInputError):
    """No state for a lab of that name."""


class LabBusyError(LabError):
    """Another `lab` command holds this lab's lock."""

    exit_code = 3


class ImageBuildError(LabError):
    """The guest image could not be built."""


class BootError(LabError):
    """A guest did not become ready in time."""


class RemoteError(LabError):
    """SSH to a guest failed, or a remote command failed."""


class BadNameError(UserInputError):
    """A lab, node or container name that is not of the allowed form; no path was built from it."""


class HostKeyMismatch(RemoteError):
    """A node presented a host key other than the pinned one: never retried."""


class NodeUnreachable(RemoteError):
    """SSH to a node could not connect or broke off (retried while a node boots)."""


class NetworkError(LabError):
    """No loopback port could be had for a forward or a link."""


class DockerProxyError(LabError):
    """The proxy to a node's engine could not be set up."""


class EngineApiError(RemoteError):
    """A node's engine refused an API request, or gave no answer; `reason` is what it said."""

    def __init__(self, message: str, reason: str, status: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status  # the HTTP status, 0 when there was no answer
