"""What `docker compose` needs on this machine, made ready by `smart-shelf docker up`.

The compose path should be as easy as `up`, also on a Debian machine that reaches Debian's and
Go's package archives but no image registry. Each step does nothing when what it makes is there:

- the tools: Debian's `docker.io` (the engine and client) and `debootstrap` (`ensure_tools`);
- the engine: started as a plain process when none answers (`ensure_engine`; machines without
  systemd), its pid and log under `$SMART_SHELF_HOME/docker/`, stopped by `stop_engine`;
- Compose v2+: Debian has none, so it is built from its Go module (`ensure_compose`, a couple of
  minutes with Go installed) into the user's Docker CLI plugins;
- the base image (`ensure_base_image`): the one named if the engine has it; for the default
  Debian base, the one made here before; else the one named pulled, or a minimal Debian
  bookworm made here with `debootstrap` and imported as `LOCAL_BASE`;
- extra CA certificates: the host's own (`/usr/local/share/ca-certificates`) copied into
  `docker/certs/`, which the Dockerfile trusts (`copy_host_ca`);
- `.env`: the deployment's passwords, written once from `.env.example` with random ones
  (`ensure_env_file`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from smart_shelf_platform.passwords import PASSWORD_VARIABLES, write_private
from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.process import StackError, read_pid, terminate
from smart_shelf_platform.stack.setup import apt_install

Progress = Callable[[str], None]

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
CERTS_DIR = REPO_ROOT / "docker" / "certs"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
DEFAULT_BASE = "debian:bookworm-slim"
LOCAL_BASE = "smart-shelf/debian:bookworm-minbase"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
COMPOSE_MODULE = "github.com/docker/compose/v5"
COMPOSE_VERSION = "v5.6.0"
COMPOSE_PLUGIN = Path.home() / ".docker" / "cli-plugins" / "docker-compose"
PULL_TIMEOUT = 60.0


def _run(cmd: Sequence[str], what: str, timeout: float | None = None,
         **kwargs) -> subprocess.CompletedProcess:
    """Run a step; a failure is one line naming the step and the tool's last words."""
    try:
        result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                                **kwargs)
    except subprocess.TimeoutExpired:
        raise StackError(f"{what}: no answer after {timeout:.0f} s") from None
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StackError(f"{what} failed: {last[0][:300]}")
    return result


def _ok(cmd: Sequence[str], timeout: float = 30.0) -> bool:
    try:
        return subprocess.run(list(cmd), capture_output=True, timeout=timeout).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def engine_answers() -> bool:
    return bool(shutil.which("docker")) and _ok(["docker", "info"], timeout=20)


def ensure_tools(progress: Progress, *, need_debootstrap: bool) -> list[str]:
    """Install Debian's docker.io (and debootstrap when a base image must be made) if missing;
    returns the packages installed."""
    missing = [pkg for pkg, tool in (("docker.io", "dockerd"), ("debootstrap", "debootstrap"))
               if (pkg != "debootstrap" or need_debootstrap) and not shutil.which(tool)
               and not Path("/usr/sbin", tool).exists()]
    apt_install(missing, progress, recommends=True)
    return missing


def engine_dir(settings: Settings) -> Path:
    return settings.home / "docker"


def ensure_engine(settings: Settings, progress: Progress, timeout: float = 60.0) -> int | None:
    """Start the Docker engine unless one answers; returns the pid of the one started."""
    if engine_answers():
        return None
    if os.geteuid() != 0:
        raise StackError("the Docker engine does not answer: start it (`sudo systemctl start "
                         "docker`) or run this as root")
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    folder = engine_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    progress(f"starting the Docker engine (log {folder / 'dockerd.log'})")
    with open(folder / "dockerd.log", "ab") as log:
        proc = subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    (folder / "dockerd.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_answers():
            return proc.pid
        if proc.poll() is not None:
            raise StackError(f"the Docker engine exited; see {folder / 'dockerd.log'}")
        time.sleep(0.5)
    raise StackError(f"the Docker engine did not answer within {timeout:.0f} s; see "
                     f"{folder / 'dockerd.log'}")


def stop_engine(settings: Settings) -> bool:
    """Stop the engine `ensure_engine` started (none other); True if one was stopped."""
    pid_file = engine_dir(settings) / "dockerd.pid"
    pid = read_pid(pid_file)
    if pid is None:
        return False
    terminate(pid, timeout=60)
    pid_file.unlink(missing_ok=True)
    return True


def compose_answers() -> bool:
    return _ok(["docker", "compose", "version"])


def ensure_compose(progress: Progress) -> bool:
    """Build Docker Compose from its Go module unless `docker compose` works; True if built."""
    if compose_answers():
        return False
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists()
                                else None)
    if not go:
        raise StackError("`docker compose` is missing and Go is not installed to build it: "
                         "install Docker Compose v2 or later (or Go) and retry")
    progress(f"building Docker Compose {COMPOSE_VERSION} from its Go module (a few minutes)")
    env = {**os.environ, "CGO_ENABLED": "0"}
    listing = _run([go, "mod", "download", "-json", f"{COMPOSE_MODULE}@{COMPOSE_VERSION}"],
                   "downloading the Compose module", env=env)
    source = Path(json.loads(listing.stdout)["Dir"])
    with tempfile.TemporaryDirectory(prefix="compose-build-") as tmp:
        work = Path(tmp) / "compose"
        shutil.copytree(source, work)
        for path in work.rglob("*"):  # the module cache is read-only
            path.chmod(path.stat().st_mode | 0o200)
        COMPOSE_PLUGIN.parent.mkdir(parents=True, exist_ok=True)
        _run([go, "build", "-trimpath", "-ldflags",
              f"-X {COMPOSE_MODULE}/internal.Version={COMPOSE_VERSION}",
              "-o", str(COMPOSE_PLUGIN), "./cmd"],
             "building Docker Compose", cwd=work, env=env)
    if not compose_answers():
        raise StackError(f"Docker Compose was built into {COMPOSE_PLUGIN} but `docker compose "
                         "version` does not run it")
    return True


def image_exists(name: str) -> bool:
    return _ok(["docker", "image", "inspect", name])


def ensure_base_image(name: str, progress: Progress) -> str:
    """The base image to build on: `name` if the engine has it; for the default Debian base,
    `LOCAL_BASE` if made here before; else `name` pulled, or for the default base `LOCAL_BASE`
    made now with debootstrap."""
    if image_exists(name):
        return name
    if name == DEFAULT_BASE and image_exists(LOCAL_BASE):
        return LOCAL_BASE  # made here before, when no registry answered
    progress(f"pulling {name}")
    if _ok(["docker", "pull", name], timeout=PULL_TIMEOUT):
        return name
    if name != DEFAULT_BASE:
        raise StackError(f"base image {name} is neither in the engine nor pullable")
    ensure_tools(progress, need_debootstrap=True)
    progress(f"no registry answers: making {LOCAL_BASE} with debootstrap (about a minute)")
    with tempfile.TemporaryDirectory(prefix="smart-shelf-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
             "debootstrap")
        for cache in (rootfs / "var/lib/apt/lists", rootfs / "var/cache/apt/archives"):
            for entry in cache.glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        _run(["docker", "import", "-", LOCAL_BASE], "docker import", stdin=tar.stdout)
        tar.wait()
    return LOCAL_BASE


def copy_host_ca(target: Path = CERTS_DIR, source: Path = HOST_CA_DIR) -> list[str]:
    """Copy the CA certificates the host was given into the image's build folder; returns the
    file names copied (none when the host has none)."""
    copied = []
    for crt in sorted(source.rglob("*.crt")) if source.is_dir() else []:
        shutil.copy2(crt, target / crt.name)
        copied.append(crt.name)
    return copied


def env_file_variables(path: Path) -> dict[str, str]:
    """NAME=value lines of an env file (comments and blank lines skipped)."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if "=" in line and not line.lstrip().startswith("#"))


def ensure_env_file(path: Path, progress: Progress) -> bool:
    """Write `path` from `.env.example` with a random password for each one left empty there,
    readable by its owner alone; an existing file is left alone. True if written."""
    if path.exists():
        return False
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, _, value = line.partition("=")
        if name in PASSWORD_VARIABLES.values() and not value:
            line = f"{name}={secrets.token_urlsafe(24)}"
        lines.append(line)
    write_private(path, "\n".join(lines) + "\n")
    progress(f"wrote {path} with new passwords (keep it: the volumes' servers hold them)")
    return True


def compose_command(project: str | None = None, env_file: Path | None = None) -> list[str]:
    cmd = ["docker", "compose", "-f", str(COMPOSE_FILE), "--project-directory", str(REPO_ROOT)]
    if project:
        cmd += ["-p", project]
    if env_file:
        cmd += ["--env-file", str(env_file)]
    return cmd


def prepare(settings: Settings, progress: Progress, *, base_image: str = DEFAULT_BASE,
            host_ca: bool = True) -> dict[str, str]:
    """Everything `docker compose up --build` needs; returns the variables the compose file
    should be given (the base image to build on)."""
    ensure_tools(progress, need_debootstrap=False)
    ensure_engine(settings, progress)
    ensure_compose(progress)
    if host_ca:
        copied = copy_host_ca()
        if copied:
            progress(f"trusting the host's CA certificates in the image: {', '.join(copied)}")
    return {"SMART_SHELF_BASE_IMAGE": ensure_base_image(base_image, progress)}


def up(settings: Settings, progress: Progress, *, env_file: Path, project: str | None = None,
       base_image: str = DEFAULT_BASE, host_ca: bool = True, build: bool = True,
       timeout: int = 900) -> None:
    """Prepare, then `docker compose up --wait`: every service healthy or completed."""
    variables = prepare(settings, progress, base_image=base_image, host_ca=host_ca)
    ensure_env_file(env_file, progress)
    cmd = [*compose_command(project, env_file), "up", "--detach", "--wait",
           "--wait-timeout", str(timeout)]
    if build:
        cmd.append("--build")
    progress("docker compose up --wait" + (" --build" if build else ""))
    result = subprocess.run(cmd, env={**os.environ, **variables})
    if result.returncode != 0:
        raise StackError(f"docker compose up failed (exit {result.returncode}); see `docker "
                         "compose ps -a` and `docker compose logs SERVICE`")
