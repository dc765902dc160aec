"""`lab docker` and `lab docker-env`: the host's docker clients against a node's engine."""

from __future__ import annotations

import shlex
import sys

import click

from . import docker
from .cli_types import LAB_NAME, NODE_NAME
from .console import reports_errors
from .seams import Seams


@click.command("docker", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("lab", type=LAB_NAME)
@click.argument("node", type=NODE_NAME)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
@reports_errors
def docker_command(seams: Seams, lab: str, node: str, args: tuple[str, ...]) -> None:
    """Run the host's docker CLI against NODE's engine: lab docker LAB NODE -- ps -a.

    The connection is the lab's SSH with the pinned host key; no TCP port is opened.
    """
    words = list(args)
    if words[:1] == ["--"]:
        words = words[1:]
    sys.exit(docker.run_docker(lab, node, words, seams))


@click.command("docker-env")
@click.argument("lab", type=LAB_NAME)
@click.argument("node", type=NODE_NAME)
@click.option("-u", "--unset", "unset", is_flag=True, help="Stop the node's proxy and print `unset` lines.")
@reports_errors
def docker_env_command(lab: str, node: str, unset: bool) -> None:
    """Print DOCKER_HOST for NODE, for eval "$(lab docker-env LAB NODE)".

    Starts (or reuses) a background proxy on a private unix socket in the lab's state dir;
    it forwards over the lab's pinned SSH and exits after an hour without clients, when the
    lab is destroyed, or with --unset.
    """
    if unset:
        docker.stop_background(lab, node)
        click.echo("unset DOCKER_HOST")
        return
    sock, pid = docker.ensure_background(lab, node)
    click.echo(f"export DOCKER_HOST={shlex.quote('unix://' + str(sock))}")
    click.echo(f"# proxy pid {pid} for {lab}/{node}; stop it with: eval \"$(lab docker-env --unset {lab} {node})\"")


def register(main: click.Group) -> None:
    """Add the docker commands to the `lab` group (called from provisioner.cli)."""
    main.add_command(docker_command)
    main.add_command(docker_env_command)
