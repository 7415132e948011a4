"""`smart-shelf docker ...` (run the platform with Docker Compose) and `smart-shelf container
...` (what each service of docker-compose.yml runs inside its container)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated, Optional

import typer

from smart_shelf_platform.settings import REPO_ROOT, get_settings
from smart_shelf_platform.stack.process import StackError


def _progress(message: str) -> None:
    typer.echo(f"- {message}", err=True)


docker_app = typer.Typer(
    help="Run the platform with Docker Compose (docker-compose.yml, docs/docker.md): one "
         "container per component, each with a healthcheck.", no_args_is_help=True)

ENV_FILE_OPTION = typer.Option(
    "--env-file", help="The deployment's settings and passwords (written from .env.example "
                       "with new passwords if missing).")
PROJECT_OPTION = typer.Option(
    "--project", "-p", help="Compose project name (default: the folder's name).")


@docker_app.command("up")
def docker_up(
    env_file: Annotated[Path, ENV_FILE_OPTION] = REPO_ROOT / ".env",
    project: Annotated[Optional[str], PROJECT_OPTION] = None,
    base_image: Annotated[str, typer.Option(
        help="Image to build on; the default one is made with debootstrap when no registry "
             "answers.")] = "debian:bookworm-slim",
    host_ca: Annotated[bool, typer.Option(
        help="Trust the host's extra CA certificates (/usr/local/share/ca-certificates) in "
             "the image.")] = True,
    build: Annotated[bool, typer.Option(help="Build the image first (cached layers are "
                                             "reused).")] = True,
    timeout: Annotated[int, typer.Option(
        min=30, help="Seconds to wait for every service to be healthy.")] = 900,
) -> None:
    """Prepare what Docker needs (Debian's docker.io, the engine started if none answers,
    Docker Compose built from its Go module if missing, the base image made with debootstrap
    when no registry answers, the host's CA certificates), write .env if missing, then
    `docker compose up --build --wait`: returns once every service is healthy and every
    one-shot init service has completed."""
    from smart_shelf_platform.stack import docker_engine

    docker_engine.up(get_settings(), _progress, env_file=env_file, project=project,
                     base_image=base_image, host_ca=host_ca, build=build, timeout=timeout)
    typer.echo("docker deployment up: every service healthy (`docker compose ps`)")


@docker_app.command("down")
def docker_down(
    env_file: Annotated[Path, ENV_FILE_OPTION] = REPO_ROOT / ".env",
    project: Annotated[Optional[str], PROJECT_OPTION] = None,
    volumes: Annotated[bool, typer.Option(
        "--volumes", help="Also delete the named volumes: every byte of state.")] = False,
    stop_engine: Annotated[bool, typer.Option(
        "--stop-engine", help="Then stop the Docker engine `docker up` started, if it did.")]
        = False,
) -> None:
    """`docker compose down`: stop and remove every container (the volumes stay unless
    --volumes)."""
    from smart_shelf_platform.stack import docker_engine

    if not env_file.exists():
        raise StackError(f"{env_file} is missing: Compose needs the deployment's env file to "
                         "read docker-compose.yml (--env-file)")
    if not docker_engine.engine_answers():
        raise StackError("the Docker engine does not answer: nothing to stop")
    cmd = [*docker_engine.compose_command(project, env_file), "--profile", "*", "down",
           "--remove-orphans"]
    if volumes:
        cmd.append("--volumes")
    if subprocess.call(cmd) != 0:
        raise StackError("docker compose down failed")
    if stop_engine and docker_engine.stop_engine(get_settings()):
        typer.echo("stopped the Docker engine")


container_app = typer.Typer(
    help="What a service of docker-compose.yml runs in its container: one component in the "
         "foreground, a one-shot init step, or a healthcheck.", no_args_is_help=True)


@container_app.command("serve")
def container_serve(component: Annotated[str, typer.Argument(
        help="postgres, redis, kafka, connect, bridge, streaming, dagster-code, "
             "dagster-webserver, dagster-daemon or dashboard.")]) -> None:
    """Run COMPONENT in the foreground as this process, logging to standard output, on
    SMART_SHELF_BIND_HOST: the command `up` would start it with."""
    from smart_shelf_platform.stack.container import serve

    serve(component, get_settings())


@container_app.command("init")
def container_init(step: Annotated[str, typer.Argument(
        help="migrations, topics, delta-tables, reference-data or connectors.")]) -> None:
    """Run one step `up` runs before it starts the streaming application (idempotent)."""
    from smart_shelf_platform.stack.container import init

    typer.echo(f"{step}: {init(step, get_settings())}")


@container_app.command("health")
def container_health(component: Annotated[str, typer.Argument(
        help="kafka (a topic listing), bridge (its consumer groups), streaming (every "
             "query reporting progress) or clock (it has started).")]) -> None:
    """Exit 0 if COMPONENT is healthy, 1 if not: a container healthcheck."""
    from smart_shelf_platform.stack.container import healthy

    if not healthy(component, get_settings()):
        raise typer.Exit(1)
