"""Local Java servers on loopback .

Jars are resolved from Maven Central with a small pom kept in ``conf/servers/``
(``mvn dependency:copy-dependencies`` into a git-ignored state folder; Maven's
``~/.m2`` caches them, so a second resolution needs no network). Each server
runs as a background process in its own session with a pid file and a log
file under its state folder, so it outlives the command that started it and
``stop`` finds it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """A local server could not be resolved, started or stopped."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A currently unused TCP port on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def servers_cache() -> Path:
    """Where resolved server jars are kept, shared by every checkout (``FRAUDGRAPH_SERVERS_CACHE``)."""
    return Path(os.environ.get("FRAUDGRAPH_SERVERS_CACHE", Path.home() / ".cache" / "fraudgraph" / "servers"))


def absolute_state_dir(state_dir: str | Path) -> Path:
    """A server's state folder; relative paths are taken from the working directory."""
    state = Path(state_dir)
    return state if state.is_absolute() else Path.cwd() / state


def resolve_maven_classpath(pom: Path, lib_dir: Path, properties: dict[str, str]) -> Path:
    """Copy the pom's dependencies into ``lib_dir`` once per property set; returns ``lib_dir``."""
    marker = lib_dir / ".resolved"
    wanted = yaml.safe_dump({"pom": pom.read_text(), "properties": properties})
    if marker.exists() and marker.read_text() == wanted:
        return lib_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerError("Maven (mvn) is needed to resolve the server jars; install Maven 3")
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    lib_dir.mkdir(parents=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib_dir}",
        *(f"-D{k}={v}" for k, v in properties.items()),
    ]
    log.info("resolving server jars from %s", pom.name)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServerError(f"maven failed to resolve {pom.name}:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    marker.write_text(wanted)
    return lib_dir


@dataclass
class JavaServer:
    """A Java server started from a resolved classpath and a main class."""

    name: str
    state_dir: Path
    host: str
    port: int
    start_timeout_s: float
    heap: str = "512m"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "server.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    # Subclasses provide these three.
    def prepare(self) -> tuple[list[str], str, list[str]]:  # pragma: no cover - abstract
        """Return (classpath entries, main class, program args) after rendering config."""
        raise NotImplementedError

    def ready(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def jvm_options(self) -> list[str]:
        return [f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true"]

    def status(self) -> dict:
        pid = self.pid()
        return {
            "server": self.name,
            "running": pid is not None,
            "pid": pid,
            "answering": bool(pid) and port_open(self.host, self.port) and self.ready(),
            "host": self.host,
            "port": self.port,
            "log": str(self.log_file),
        }

    def start(self) -> dict:
        """Start in the background and wait until it answers; a running server is left as it is."""
        running = self.pid()
        if running is not None:
            self._wait_ready(running)
            return self.status()
        if port_open(self.host, self.port):
            raise ServerError(f"{self.name}: port {self.host}:{self.port} is already taken by another process")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        classpath, main, args = self.prepare()
        java = shutil.which("java")
        if java is None:
            raise ServerError("Java 17 is needed to run the local servers")
        cmd = [java, *self.jvm_options(), "-cp", os.pathsep.join(classpath), main, *args]
        with open(self.log_file, "ab") as logfh:
            proc = subprocess.Popen(
                cmd,
                stdout=logfh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        log.info("%s starting (pid %d), log %s", self.name, proc.pid, self.log_file)
        self._wait_ready(proc.pid, proc)
        return self.status()

    def _wait_ready(self, pid: int, proc: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None or not _pid_alive(pid):
                tail = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
                raise ServerError(f"{self.name} exited during start-up; log tail:\n{tail}")
            if port_open(self.host, self.port) and self.ready():
                log.info("%s answering on %s:%d", self.name, self.host, self.port)
                return
            time.sleep(0.5)
        raise ServerError(f"{self.name} did not answer within {self.start_timeout_s:.0f}s; see {self.log_file}")

    def stop(self, timeout_s: float = 60) -> dict:
        """SIGTERM (clean shutdown, graph persisted), then SIGKILL after ``timeout_s``."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return self.status()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(pid):
            log.warning("%s did not stop within %.0fs; killing", self.name, timeout_s)
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):  # reap it if it was our child
            os.waitpid(pid, os.WNOHANG)
        self.pid_file.unlink(missing_ok=True)
        return self.status()

    def kill(self) -> None:
        """SIGKILL without a clean shutdown (for fault tests)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        self.pid_file.unlink(missing_ok=True)
