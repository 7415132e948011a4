"""The local services, each started as a plain process under the state directory.

Each component knows its port, how to start, how to tell it is healthy and how to stop. A component
configured as external (an already running server) is checked but never started or stopped.
"""

from __future__ import annotations

import base64
import glob
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis as redis_lib
import requests
from confluent_kafka.admin import AdminClient
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

from smart_shelf_platform.passwords import properties_value, write_private
from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.connect import REST_USER, rest_auth, secrets_file, write_secrets
from smart_shelf_platform.stack.process import (
    StackError, port_in_use, read_pid, spawn, terminate, tree_rss_bytes, wait_until,
)

log = logging.getLogger(__name__)

# Passwords (SCRAM) for every connection, on the local socket as over TCP; nothing is trusted.
HBA = """# Written by smart_shelf_platform/stack/components.py; edits are overwritten.
local   all          all                  scram-sha-256
host    all          all   127.0.0.1/32   scram-sha-256
host    all          all   ::1/128        scram-sha-256
local   replication  all                  scram-sha-256
host    replication  all   127.0.0.1/32   scram-sha-256
host    replication  all   ::1/128        scram-sha-256
"""
# A server listening beyond the loopback (SMART_SHELF_BIND_HOST, a container's) takes clients
# from any address, with their passwords all the same.
HBA_ANY_HOST = """host    all          all   all            scram-sha-256
host    replication  all   all            scram-sha-256
"""
LOOPBACK = ("127.0.0.1", "localhost", "::1")

@dataclass
class ComponentStatus:
    name: str
    healthy: bool
    port: int | None
    pid: int | None
    rss_bytes: int
    external: bool
    detail: str = ""


class Component:
    name = ""
    start_timeout = 60.0
    start_attempts = 1
    after_setup = False  # True: `up` starts it once topics, tables and reference data exist

    def __init__(self, settings: Settings):
        self.s = settings
        self.dir = settings.home / self.name
        self.log_file = settings.logs_dir / f"{self.name}.log"
        self.pid_file = self.dir / f"{self.name}.pid"

    # --- to implement ---
    port: int | None  # None: the component listens on no port
    external: bool = False

    def healthy(self) -> bool:
        raise NotImplementedError

    def runs_without_password(self) -> bool:
        """True for a server this stack started before passwords were required (`up` restarts
        the stack then: its running clients know no passwords either)."""
        return False

    def _start(self) -> None:
        raise NotImplementedError

    # --- shared behaviour ---
    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def start(self) -> bool:
        """Start unless running; returns True when this call started it."""
        if self.external:
            if not self.healthy():
                raise StackError(f"{self.name} is configured as external but is not reachable on "
                                 f"port {self.port}; start it or unset SMART_SHELF_"
                                 f"{self.name.upper()}_EXTERNAL")
            return False
        if self.pid() is not None and self.healthy():
            return False
        if self.port and self.pid() is None and port_in_use("127.0.0.1", self.port):
            raise StackError(f"port {self.port} for {self.name} is already taken by another "
                             f"process; stop it or set SMART_SHELF_{self.name.upper()}_PORT")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self.start_attempts + 1):
            self._start()
            try:
                wait_until(self.healthy, self.start_timeout, self.name, self.log_file,
                           alive=lambda: self.pid() is not None)
                return True
            except StackError:
                self.stop()
                if attempt == self.start_attempts:
                    raise
                log.warning("%s did not start (attempt %d); retrying", self.name, attempt)
        return True

    def stop(self) -> None:
        if self.external:
            return
        pid = self.pid()
        if pid is not None:
            terminate(pid)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> ComponentStatus:
        pid = None if self.external else self.pid()
        try:
            ok = self.healthy()
        except Exception:  # noqa: BLE001 - status must never fail
            ok = False
        return ComponentStatus(self.name, ok, self.port, pid,
                               tree_rss_bytes(pid) if pid else 0, self.external)


# ---------------------------------------------------------------------------------------------


def _postgres_bin(tool: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"),
                        key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return candidates[-1]
    found = shutil.which(tool)
    if not found:
        raise StackError(f"PostgreSQL server binaries ({tool}) not found; run "
                         "`./smart-shelf setup` (or apt-get install postgresql)")
    return found


class Postgres(Component):
    name = "postgres"

    @property
    def port(self) -> int:
        return self.s.postgres_port

    @property
    def external(self) -> bool:
        return self.s.postgres_external

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def _as_server_user(self, cmd: list[str]) -> list[str]:
        # Postgres refuses to run as root; the Debian package creates the `postgres` user.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def healthy(self) -> bool:
        with psycopg.connect(self.s.postgres_dsn(db="postgres"), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")

    def _initdb(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.dir)
        pwfile = self.dir / "pwfile"
        write_private(pwfile, self.s.postgres_password + "\n")
        self._chown(pwfile)
        cmd = [_postgres_bin("initdb"), "-D", str(self.data_dir), "-U", self.s.postgres_user,
               f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
               "--locale=C.UTF-8"]
        result = subprocess.run(self._as_server_user(cmd), capture_output=True, text=True)
        pwfile.unlink()
        if result.returncode != 0:
            raise StackError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)
        self._write_hba()
        # wal_level=logical and replication slots: Debezium's CDC source needs them.
        with open(self.data_dir / "postgresql.auto.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '{self.s.bind_host}'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\n"
                "shared_buffers = 128MB\nmax_connections = 100\n"
                "logging_collector = off\ntimezone = 'UTC'\n"
            )

    @property
    def socket_dir(self) -> Path:
        return self.dir / "run"

    @property
    def hba_file(self) -> Path:
        return self.data_dir / "pg_hba.conf"

    def _write_hba(self) -> None:
        self.hba_file.write_text(HBA + ("" if self.s.bind_host in LOOPBACK else HBA_ANY_HOST))
        self._chown(self.hba_file)

    def runs_without_password(self) -> bool:
        return not self.external and self.pid() is not None and self._trusts()

    def _trusts(self) -> bool:
        """A data directory made before passwords were required trusts local connections."""
        return any(line.split()[-1:] == ["trust"] for line in self.hba_file.read_text()
                   .splitlines() if not line.lstrip().startswith("#"))

    def _require_passwords(self) -> None:
        """Secure a trusting server: give the owner its password (through the local socket,
        while that is still trusted), then require passwords everywhere."""
        with psycopg.connect(host=str(self.socket_dir), port=self.port, dbname="postgres",
                             user=self.s.postgres_user, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(self.s.postgres_user), sql.Literal(self.s.postgres_password)))
            self._write_hba()
            conn.execute("SELECT pg_reload_conf()")
        log.warning("postgres trusted local connections; it now requires passwords")

    def _start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        # The port may have changed since initdb; the command line wins over the config file.
        self.log_file.touch()
        self._chown(self.log_file)
        self._chown(self.log_file.parent)
        cmd = [_postgres_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
               "-o", f"-p {self.port}", "-w", "-t", "60", "start"]
        result = subprocess.run(self._as_server_user(cmd), capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"postgres failed to start; see {self.log_file}")
        if self._trusts():
            self._require_passwords()

    def stop(self) -> None:
        if self.external or self.pid() is None:
            return
        subprocess.run(self._as_server_user([_postgres_bin("pg_ctl"), "-D", str(self.data_dir),
                                             "-m", "fast", "-w", "stop"]),
                       capture_output=True)


class Redis(Component):
    name = "redis"
    start_timeout = 20.0

    @property
    def port(self) -> int:
        return self.s.redis_port

    @property
    def external(self) -> bool:
        return self.s.redis_external

    def healthy(self) -> bool:
        return bool(redis_lib.Redis.from_url(self.s.redis_url, socket_timeout=2).ping())

    def runs_without_password(self) -> bool:
        if self.external or self.pid() is None:
            return False
        client = redis_lib.Redis(host=self.s.redis_host, port=self.port, socket_timeout=2,
                                 retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except redis_lib.RedisError:  # NOAUTH: it asks for its password
            return False
        finally:
            client.close()

    def _config(self) -> Path:
        """The server's configuration, in a file of the owner's alone: it holds the password,
        which a command line would show to every user of the machine. AOF, so the clock
        position and unforwarded stream entries survive a restart."""
        password = self.s.redis_password.replace("\\", "\\\\").replace('"', '\\"')
        return write_private(self.dir / "redis.conf", (
            f"port {self.port}\nbind {self.s.bind_host}\nprotected-mode yes\n"
            f'requirepass "{password}"\ndir "{self.dir}"\n'
            'appendonly yes\nsave ""\ndaemonize no\n'))

    def command(self) -> list[str]:
        """The server in the foreground, on its configuration file."""
        server = shutil.which("redis-server")
        if not server:
            raise StackError("redis-server not found; run `./smart-shelf setup` "
                             "(or apt-get install redis-server)")
        return [server, str(self._config())]

    def _start(self) -> None:
        spawn(self.command(), self.log_file, self.pid_file)


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise StackError("java not found; install a Java 17+ runtime (e.g. apt-get install "
                         "openjdk-17-jre-headless)")
    return java


def _classpath(lib_dir: Path) -> str:
    if not lib_dir.is_dir() or not any(lib_dir.glob("*.jar")):
        raise StackError(f"no jars in {lib_dir}; run `./smart-shelf setup` to resolve them")
    return f"{lib_dir}/*"


def _kafka_jvm(comp: Component, main: str, *args: str, heap: str,
               properties: Sequence[str] = ()) -> list[str]:
    """A JVM command on the Kafka classpath (broker, storage tool, Connect), logging to the
    component's log file; `properties`: more `-D` system properties."""
    log4j = _log4j_config(comp.dir / "log4j2.yaml", comp.log_file)
    return [_java(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={comp.s.logs_dir}", *properties,
            "-cp", _classpath(comp.s.jvm_lib / "kafka"), main, *args]


def _log4j_config(target: Path, log_file: Path) -> Path:
    target.write_text(
        "Configuration:\n  status: warn\n  Appenders:\n    File:\n      name: FILE\n"
        f"      fileName: {log_file}\n      PatternLayout:\n"
        "        pattern: \"[%d] %p %m (%c)%n\"\n"
        "  Loggers:\n    Root:\n      level: INFO\n      AppenderRef:\n        - ref: FILE\n"
        "    Logger:\n      - name: org.apache.kafka.clients\n        level: WARN\n"
        "      - name: kafka.log\n        level: WARN\n"
    )
    return target


class Kafka(Component):
    name = "kafka"
    start_timeout = 90.0

    @property
    def port(self) -> int:
        return self.s.kafka_port

    @property
    def external(self) -> bool:
        return self.s.kafka_external

    def healthy(self) -> bool:
        # log_level 0: a probe of a broker that is still starting must not spam the console.
        admin = AdminClient({"bootstrap.servers": self.s.kafka_bootstrap,
                             "socket.timeout.ms": 2000, "log_level": 0})
        md = admin.list_topics(timeout=3)
        return len(md.brokers) > 0

    def _properties(self) -> Path:
        props = self.dir / "server.properties"
        # Listens on the bind address, and tells clients (and its own controller) the host they
        # know it by: 127.0.0.1 locally, its service name in a container network.
        bind, host = self.s.bind_host, self.s.kafka_host
        props.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.voters=1@{host}:{self.s.kafka_controller_port}\n"
            f"listeners=PLAINTEXT://{bind}:{self.port},CONTROLLER://{bind}:"
            f"{self.s.kafka_controller_port}\n"
            f"advertised.listeners=PLAINTEXT://{host}:{self.port}\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
            f"log.dirs={self.dir / 'data'}\n"
            f"num.partitions={self.s.kafka_partitions}\n"
            "offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\nshare.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n"
            "auto.create.topics.enable=false\nlog.cleaner.dedupe.buffer.size=16777216\n"
        )
        return props

    def command(self) -> list[str]:
        """The broker in the foreground; formats its storage first if it has none."""
        props = self._properties()
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            result = subprocess.run(
                _kafka_jvm(self, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                               str(props), heap="256m"),
                capture_output=True, text=True)
            if result.returncode != 0:
                raise StackError(f"formatting Kafka storage failed: "
                                 f"{(result.stderr or result.stdout).strip()[-300:]}")
        return _kafka_jvm(self, "kafka.Kafka", str(props), heap=self.s.kafka_heap)

    def _start(self) -> None:
        spawn(self.command(), self.dir / "stdout.log", self.pid_file)


def _kafka_cluster_id() -> str:
    """A random cluster id as Kafka makes them: URL-safe base64 of a UUID, never starting with
    '-' (the storage tool would read it as an option; 1 id in 64 does)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Connect(Component):
    name = "connect"
    start_timeout = 120.0
    # A worker that starts while the broker is still electing its group coordinator can exit
    # at once; a second start then succeeds.
    start_attempts = 2

    def __init__(self, settings: Settings, group_id: str = "smart-shelf-connect",
                 storage_prefix: str = "_connect"):
        super().__init__(settings)
        # Another group with its own storage topics is a separate worker cluster on the same
        # Kafka (a test's own worker).
        self.group_id = group_id
        self.storage_prefix = storage_prefix

    @property
    def port(self) -> int:
        return self.s.connect_port

    @property
    def url(self) -> str:
        return f"http://{self.s.connect_host}:{self.port}"

    def healthy(self) -> bool:
        r = requests.get(f"{self.url}/connectors", auth=rest_auth(self.s), timeout=2)
        return r.status_code == 200

    def plugins(self) -> list[str]:
        return [p["class"] for p in requests.get(f"{self.url}/connector-plugins",
                                                 auth=rest_auth(self.s), timeout=5).json()]

    def has_platform_transforms(self) -> bool:
        plugins = requests.get(f"{self.url}/connector-plugins?connectorsOnly=false",
                               auth=rest_auth(self.s), timeout=5)
        return any(p["class"].startswith("io.smartshelf.connect.") for p in plugins.json())

    def _rest_login(self) -> Path:
        """The JAAS login of the REST API: one user (`connect.REST_USER`) and its password, in
        a file of the owner's alone that the basic-auth extension reads."""
        users = write_private(self.dir / "rest-users.properties",
                              f"{REST_USER}={properties_value(self.s.connect_password)}\n")
        return write_private(self.dir / "rest-jaas.conf", (
            "KafkaConnect {\n  org.apache.kafka.connect.rest.basic.auth.extension."
            f'PropertyFileLoginModule required\n  file="{users}";\n}};\n'))

    def start(self) -> bool:
        # A worker started before setup built the platform's transforms cannot run the
        # connectors, and one started before its REST API required a password serves anyone;
        # either is restarted.
        if self.pid() is not None and self.healthy():
            if not self.has_platform_transforms():
                log.warning("connect runs without the platform's transforms; restarting it")
                self.stop()
            elif requests.get(f"{self.url}/connectors", timeout=2).status_code != 401:
                log.warning("connect serves its REST API without a password; restarting it")
                self.stop()
        return super().start()

    def command(self) -> list[str]:
        """The worker in the foreground, with its configuration, secrets and REST login."""
        worker = self.dir / "worker.properties"
        worker.write_text(
            f"bootstrap.servers={self.s.kafka_bootstrap}\ngroup.id={self.group_id}\n"
            "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
            "value.converter=org.apache.kafka.connect.json.JsonConverter\n"
            "value.converter.schemas.enable=false\n"
            f"config.storage.topic={self.storage_prefix}_configs\n"
            f"offset.storage.topic={self.storage_prefix}_offsets\n"
            f"status.storage.topic={self.storage_prefix}_status\n"
            "config.storage.replication.factor=1\noffset.storage.replication.factor=1\n"
            "status.storage.replication.factor=1\n"
            "offset.storage.partitions=3\nstatus.storage.partitions=1\n"
            f"listeners=http://{self.s.bind_host}:{self.port}\n"
            f"rest.advertised.host.name={self.s.connect_host}\n"
            f"plugin.path={self.s.jvm_lib / 'connect-plugins'}\n"
            "offset.flush.interval.ms=5000\n"
            # Connector configs name their passwords as ${file:<secrets file>:<key>}.
            "config.providers=file\n"
            "config.providers.file.class="
            "org.apache.kafka.common.config.provider.FileConfigProvider\n"
            f"config.providers.file.param.allowed.paths={secrets_file(self.s).parent}\n"
            # Every REST request needs the user's password (HTTP basic auth).
            "rest.extension.classes=org.apache.kafka.connect.rest.basic.auth.extension."
            "BasicAuthSecurityRestExtension\n"
        )
        write_secrets(self.s)
        login = self._rest_login()
        return _kafka_jvm(self, "org.apache.kafka.connect.cli.ConnectDistributed", str(worker),
                          heap=self.s.connect_heap,
                          properties=[f"-Djava.security.auth.login.config={login}"])

    def _start(self) -> None:
        spawn(self.command(), self.dir / "stdout.log", self.pid_file)


class Bridge(Component):
    """The Redis Streams -> Kafka bridge (`producers.bridge`), as a supervised process."""

    name = "bridge"
    start_timeout = 30.0
    port = None

    def healthy(self) -> bool:
        return self.pid() is not None and self.consuming()

    def consuming(self) -> bool:
        """The bridge creates its consumer group on every stream before it forwards anything."""
        from producers.streams import CONSUMER_GROUP, default_stream_topics

        client = redis_lib.Redis.from_url(self.s.redis_url, socket_timeout=2)
        try:
            return all(any(g["name"] == CONSUMER_GROUP.encode() for g in client.xinfo_groups(s))
                       for s in default_stream_topics())
        finally:
            client.close()

    def command(self) -> list[str]:
        return [sys.executable, "-m", "producers.bridge"]

    def _start(self) -> None:
        spawn(self.command(), self.log_file, self.pid_file, env=self.s.as_env())


class Streaming(Component):
    """The Spark streaming application (`python -m streaming.runner`, every query), supervised.

    Spark takes tens of seconds and about 1 GiB before its queries run, so `up` does not wait:
    the component counts as started once the process is still alive after `settle_seconds`
    (an import error or a bad option has shown by then), and as healthy while it runs. The
    runner exits when a query fails, so a live process is a running application; its log says
    when each query started. It reads the topics and tables `up` creates, so `up` starts it
    after those (`after_setup`). Stopping sends SIGTERM to the runner alone, which stops its
    queries through its JVM (so the JVM must not get the signal first); a batch cut short
    replays on the next start, idempotently. Whatever is left after `stop_timeout` is killed.
    """

    name = "streaming"
    port = None
    after_setup = True
    start_timeout = 10.0
    settle_seconds = 3.0
    stop_timeout = 60.0

    def __init__(self, settings: Settings, extra_args: Sequence[str] = ()):
        super().__init__(settings)
        self.extra_args = list(extra_args)  # more runner options, e.g. --query, --topic-prefix

    def healthy(self) -> bool:
        return self.pid() is not None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streaming.runner",
                "--trigger-seconds", str(self.s.streaming_trigger_seconds), *self.extra_args]

    def _start(self) -> None:
        spawn(self.command(), self.log_file, self.pid_file, env=self.s.as_env(), cwd=REPO_ROOT)

    def start(self) -> bool:
        started = super().start()
        if started:
            deadline = time.monotonic() + self.settle_seconds
            while time.monotonic() < deadline:
                if self.pid() is None:
                    self.stop()
                    raise StackError(f"{self.name} exited during start-up; see {self.log_file}")
                time.sleep(0.25)
        return started

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, self.stop_timeout, leader_first=True)
        self.pid_file.unlink(missing_ok=True)


def all_components(settings: Settings, *, include_disabled: bool = False) -> list[Component]:
    """In start order (`up` starts those with `after_setup` once topics, tables and reference
    data exist); `down` stops them in reverse. `include_disabled` adds the platform processes
    the settings leave out (for `down`: one started before it was disabled still stops)."""
    from smart_shelf_platform.stack.dagster_service import DagsterService
    from smart_shelf_platform.stack.dashboard_service import DashboardService

    comps: list[Component] = [Postgres(settings), Redis(settings), Kafka(settings)]
    optional: list[tuple[bool, type[Component]]] = [
        (settings.connect_enabled, Connect), (settings.bridge_enabled, Bridge),
        (settings.dagster_enabled, DagsterService), (settings.dashboard_enabled, DashboardService),
        (settings.streaming_enabled, Streaming)]
    comps += [cls(settings) for enabled, cls in optional if enabled or include_disabled]
    return comps
