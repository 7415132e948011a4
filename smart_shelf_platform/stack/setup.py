"""`smart-shelf setup`: install what the platform needs and is missing, idempotently.

Python packages come from pyproject.toml (the `./smart-shelf` launcher installs them before any
Python runs; `setup` re-checks), JVM jars from jvm/pom.xml through Maven, and the Postgres and
Redis servers and Chromium (for the dashboard's browser tests) from Debian's packages.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.process import StackError

log = logging.getLogger(__name__)

POM = REPO_ROOT / "jvm" / "pom.xml"
# The platform's own Connect transforms (JoinedKey, ContractSchema), built from source by Maven.
TRANSFORMS = REPO_ROOT / "jvm" / "connect-transforms"
TRANSFORMS_PLUGIN = "connect-plugins/smart-shelf-transforms"
# Maven profile -> directory under the jar cache (Connect wants one sub-folder per plugin).
JAR_PROFILES = {
    "kafka": "kafka",
    "debezium-postgres": "connect-plugins/debezium-postgres",
    "debezium-jdbc": "connect-plugins/debezium-jdbc",
    "spark": "spark",
}
DEBIAN_PACKAGES = {"postgresql": "initdb", "redis-server": "redis-server"}
# The dashboard's browser tests drive Debian's Chromium through Playwright (never its download).
CHROMIUM = Path("/usr/lib/chromium/chromium")

Progress = Callable[[str], None]


def java_major_version() -> int:
    java = shutil.which("java")
    if not java:
        raise StackError("Java is missing: install a Java 17+ runtime "
                         "(apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else 0


def check_java() -> None:
    major = java_major_version()
    if major < 17:
        raise StackError(f"Java {major} found, Kafka 4 and Spark 4 need Java 17+: install "
                         "openjdk-17-jre-headless")


def _pom_stamp() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def _transforms_stamp() -> str:
    """Changes with the transforms' pom or sources: a rebuild is due."""
    digest = hashlib.sha256()
    for path in sorted([TRANSFORMS / "pom.xml", *(TRANSFORMS / "src").rglob("*.java")]):
        digest.update(path.relative_to(TRANSFORMS).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _transforms_built(settings: Settings) -> bool:
    return (settings.jvm_lib / TRANSFORMS_PLUGIN / f".built-{_transforms_stamp()}").exists()


def jars_ready(settings: Settings) -> bool:
    return ((settings.jvm_lib / f".resolved-{_pom_stamp()}").exists()
            and _transforms_built(settings))


def resolve_jars(settings: Settings, progress: Progress = print) -> bool:
    """Resolve every Maven profile into the jar cache and build the platform's Connect
    transforms; returns True when anything was fetched or built."""
    if jars_ready(settings):
        return False
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("Maven is missing: install it (apt-get install maven) so setup can "
                         "resolve the Kafka, Connect, Debezium and Spark jars")
    if not (settings.jvm_lib / f".resolved-{_pom_stamp()}").exists():
        _resolve_profiles(settings, mvn, progress)
    if not _transforms_built(settings):
        build_transforms(settings, mvn, progress)
    return True


def _resolve_profiles(settings: Settings, mvn: str, progress: Progress) -> None:
    for profile, subdir in JAR_PROFILES.items():
        target = settings.jvm_lib / subdir
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        progress(f"resolving JVM jars: {profile}")
        cmd = [mvn, "-q", "-B", "-f", str(POM), "-P", profile, "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}"]
        if subdir.startswith("connect-plugins/"):
            # The worker provides the Kafka API classes; plugin copies would shadow them.
            cmd.append("-DexcludeGroupIds=org.apache.kafka")
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            errors = [ln for ln in result.stdout.splitlines() if "[ERROR]" in ln][:1]
            raise StackError(f"Maven could not resolve profile {profile}: "
                             f"{errors[0] if errors else result.stderr.strip()[-200:]}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    for old in settings.jvm_lib.glob(".resolved-*"):
        old.unlink()
    (settings.jvm_lib / f".resolved-{_pom_stamp()}").touch()


def build_transforms(settings: Settings, mvn: str, progress: Progress = print) -> Path:
    """Build jvm/connect-transforms into its own Connect plugin folder; returns the jar."""
    progress("building the Connect transforms")
    result = subprocess.run([mvn, "-q", "-B", "-f", str(TRANSFORMS / "pom.xml"), "package"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        errors = [ln for ln in result.stdout.splitlines() if "[ERROR]" in ln][:1]
        raise StackError(f"Maven could not build jvm/connect-transforms: "
                         f"{errors[0] if errors else result.stderr.strip()[-200:]}")
    target = settings.jvm_lib / TRANSFORMS_PLUGIN
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    jar = Path(shutil.copy2(TRANSFORMS / "target" / "smart-shelf-connect-transforms.jar", target))
    (target / f".built-{_transforms_stamp()}").touch()
    return jar


def missing_debian_packages() -> list[str]:
    from smart_shelf_platform.stack.components import _postgres_bin

    missing = []
    try:
        _postgres_bin("initdb")
    except StackError:
        missing.append("postgresql")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if not CHROMIUM.exists():
        missing.append("chromium")
    return missing


def install_debian_packages(progress: Progress = print) -> list[str]:
    missing = missing_debian_packages()
    apt_install(missing, progress)
    return missing


def apt_install(packages: list[str], progress: Progress = print, *,
                recommends: bool = False) -> None:
    """Install Debian packages with apt-get (as root; otherwise say the command to run)."""
    if not packages:
        return
    if os.geteuid() != 0:
        raise StackError(f"missing Debian packages: run `sudo apt-get install -y "
                         f"{' '.join(packages)}` and retry")
    progress(f"installing Debian packages: {', '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q",
               *([] if recommends else ["--no-install-recommends"]), *packages]
    for cmd in (["apt-get", "update", "-q"], install):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()[-200:]}")


def python_dependencies_ok() -> bool:
    """The launcher installs packages; this confirms the running interpreter has them."""
    try:
        import dagster  # noqa: F401
        import delta  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def run_setup(settings: Settings, progress: Progress = print) -> None:
    if not python_dependencies_ok():
        progress("installing Python packages")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e",
                        f"{REPO_ROOT}[test]"], check=True)
    check_java()
    install_debian_packages(progress)
    resolve_jars(settings, progress)


def spark_jars(settings: Settings) -> list[Path]:
    """Jars for `spark.jars`: the spark profile minus what pyspark already ships.

    The profile's transitive closure includes Spark's own dependencies (Jackson, Parquet,
    Hadoop...) at other versions; loading both would break Spark, so only jars whose artifact
    pyspark does not ship are added.
    """
    import pyspark

    shipped = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    lib = settings.jvm_lib / "spark"
    if not lib.is_dir():
        raise StackError(f"no Spark connector jars in {lib}; run `./smart-shelf setup`")
    return sorted(p for p in lib.glob("*.jar") if _artifact(p.name) not in shipped)


def _artifact(jar_name: str) -> str:
    """'jackson-core-2.13.5.jar' -> 'jackson-core'; the version is the first dotted number."""
    match = re.match(r"(.+?)-\d+(\.\d+)+.*\.jar$", jar_name)
    return match.group(1) if match else jar_name
