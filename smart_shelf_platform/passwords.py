"""The stack's passwords: generated once per stack, or taken from the environment.

Every server the stack starts asks for a password: the Postgres owner and the roles
`smart_shelf_writer` (the platform) and `smart_shelf_reader` (the dashboard), Redis, and the
Kafka Connect REST API. A
`SMART_SHELF_*_PASSWORD` variable sets one; with `SMART_SHELF_ENV=local`, one left unset is read
from `$SMART_SHELF_HOME/secrets.env`, which the first reader writes with random passwords,
readable by its owner alone (0600). The file is the stack's: keep it with the state directory
(Postgres keeps the passwords it was given; a new file does not change them).

Outside `local` each password must come from the environment and must not be one of the role
names the platform once used as passwords; `refusals` says which are at fault, so `up` refuses
to start with them.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path

SECRETS_FILE = "secrets.env"
# Settings field -> its variable. Settings imports this module, so the names are spelled here.
PASSWORD_VARIABLES = {
    "postgres_password": "SMART_SHELF_POSTGRES_PASSWORD",
    "postgres_writer_password": "SMART_SHELF_POSTGRES_WRITER_PASSWORD",
    "postgres_reader_password": "SMART_SHELF_POSTGRES_READER_PASSWORD",
    "redis_password": "SMART_SHELF_REDIS_PASSWORD",
    "connect_password": "SMART_SHELF_CONNECT_PASSWORD",
}
# What the passwords were before they were generated: each role's name. Never good enough.
FORMER_DEFAULTS = frozenset({"smart_shelf", "smart_shelf_writer", "smart_shelf_reader"})


def stack_passwords(home: Path) -> dict[str, str]:
    """Field -> password of the stack under `home`, adding any the file lacks (the first call
    writes them all). The file is locked while read and written, so processes that start
    together agree on one set."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / SECRETS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        os.fchmod(file.fileno(), 0o600)
        stored = dict(line.split("=", 1) for line in file.read().splitlines()
                      if "=" in line and not line.startswith("#"))
        missing = [v for v in PASSWORD_VARIABLES.values() if not stored.get(v)]
        if missing:
            stored.update({variable: secrets.token_urlsafe(24) for variable in missing})
            file.seek(0)
            file.truncate()
            file.write("# The stack's passwords (smart_shelf_platform/passwords.py); a "
                       "SMART_SHELF_* variable overrides one.\n"
                       + "".join(f"{k}={v}\n" for k, v in stored.items()))
            file.flush()
            os.fsync(file.fileno())
    return {field: stored[variable] for field, variable in PASSWORD_VARIABLES.items()}


def refusals(settings) -> list[str]:
    """The variables whose password the settings' environment may not use: none in `local`;
    elsewhere those unset or left at a former default."""
    if settings.env == "local":
        return []
    return [variable for field, variable in PASSWORD_VARIABLES.items()
            if getattr(settings, field) in ("", *FORMER_DEFAULTS)]


def properties_value(text: str) -> str:
    """`text` as the value of a Java properties line (Kafka's file config provider, JAAS)."""
    escaped = (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
               .replace("\t", "\\t"))
    return "\\" + escaped if escaped.startswith((" ", "\f")) else escaped


def write_private(path: Path, text: str) -> Path:
    """Write a file that holds a secret, readable by its owner alone (0600) from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)
    return path
