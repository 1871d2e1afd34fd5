"""A real node on this machine, started from a real release, driven the way
the deployer drives a host's node: the release's own erl_call under the
name its vm.args gives (hotdeploy/commands.on_node), the compiled node
program on stdin (hotdeploy/agent.program), the package staged and checked
by the same shell line (hotdeploy/commands.stage_package). Only SSH is
left out: the command runs here instead of over a connection."""
from __future__ import annotations

import http.client
import itertools
import os
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from hotdeploy import agent
from hotdeploy import commands as cmd
from tasks.nodeprogram import node_program

from .releases import APP, Built


RECORD = "2026-12-03T00:00:00Z run=test"     # the prefix of this session's hotdeploy.log lines


_ports = itertools.count()


def free_port() -> int:
    """A port for a node, an epmd or a test server to listen on, taken below
    the kernel's ephemeral range (from 20000, a thousand per xdist worker):
    a port found free inside that range can be handed to some outgoing
    connection before the node binds it, and the node then fails to start."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    for _ in range(1000):
        port = 20000 + 1000 * (worker % 10) + next(_ports) % 1000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:   # in use, or a stopped node's connections are in TIME_WAIT on it
                continue
            return port
    raise RuntimeError(f"no free port in this worker's thousand from {20000 + 1000 * (worker % 10)}")


@dataclass
class LocalNode:
    root: Path
    home: Path
    port: int

    @property
    def env(self) -> dict:
        return {**os.environ, "HOME": str(self.home)}

    def sh(self, line: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", line], input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=timeout)

    # -- the node's life -------------------------------------------------

    def start(self) -> None:
        done = self.sh(cmd.start_daemon(str(self.root), APP, 30), timeout=40)
        assert done.returncode == 0, f"daemon did not start: {done.stdout}{done.stderr}"
        self.wait_answering()

    def stop(self) -> None:
        """Killed, as a crash or a power cut would (and in no time): what runs
        after the next start is only what the host has on disk."""
        pid = self.beam_pid(required=False)
        if pid:
            os.kill(pid, 9)   # its sockets close at once: epmd forgets the name, the port is free

    def stop_and_start(self) -> float:
        """The node stopped and started the way a restart deploy does it
        (hotdeploy/commands.stop_node and start_node); the seconds it did not
        answer."""
        t0 = time.monotonic()
        done = self.sh(cmd.stop_node(str(self.root), APP, self.beam_pid(), 30), timeout=40)
        assert done.returncode == 0, done.stderr
        done = self.sh(cmd.start_node(str(self.root), APP, 30), timeout=40)
        assert done.returncode == 0, f"the node did not start: {done.stdout}{done.stderr}"
        self.wait_answering()
        return time.monotonic() - t0

    def set_boot_fresh(self, vsn: str) -> dict:
        """The set_boot op in a VM of its own, as the way back of a restart
        runs it when the new node does not answer."""
        done = self.sh(cmd.on_fresh_vm(str(self.root)),
                       stdin=agent.program(agent.call_params("set_boot", str(self.root), APP, vsn=vsn),
                                           node_program()))
        return agent.parse_answer(done.stdout) if done.stdout.strip() else {"result": "shell", "stderr": done.stderr}

    def restart(self) -> None:
        """Killed and started by its own start script, as systemd would after
        a crash or a reboot: what boots is what the host has made permanent."""
        self.stop()
        self.start()

    def wait_answering(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.get("/api/public/state")      # not the version: a release under test may break that one
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def beam_pid(self, required: bool = True) -> int | None:
        """The emulator's OS pid, read from /proc (not from the code under test)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().startswith("beam") and "State:\tZ" not in \
                        (entry / "status").read_text() and \
                        f"{self.root}/" in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    return int(entry.name)
            except OSError:
                continue
        assert not required, "no beam process of this node"
        return None

    # -- what a client sees ----------------------------------------------

    def get(self, path: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().read().decode().strip()
        finally:
            conn.close()

    def version(self) -> str:
        return self.get("/api/public/version")

    def shape(self) -> str:
        return dict(p.split("=") for p in self.get("/api/public/state").split())["shape"]

    def log_lines(self) -> list[str]:
        log = self.root / "hotdeploy.log"
        return [line.rstrip() for line in log.read_text().splitlines()] if log.exists() else []

    def start_script_vsn(self) -> str | None:
        for line in (self.root / "bin" / APP).read_text().splitlines():
            if line.startswith('REL_VSN="'):
                return line.split('"')[1]
        return None

    def eval(self, expr: str) -> str:
        """An expression evaluated in the node, as an operator's erl_call would."""
        done = self.sh(cmd.on_node(str(self.root), 10), stdin=expr + "\n")
        return done.stdout.strip()

    # -- the node program, as the deployer calls it ------------------------

    def call(self, op: str, before: str = "", beam: bytes | None = None, timeout: int = 60, **extra) -> dict:
        params = agent.call_params(op, str(self.root), APP, **extra)
        line = (before + " && " if before else "") + cmd.on_node(str(self.root), timeout)
        done = self.sh(line, stdin=agent.program(params, beam if beam is not None else node_program()),
                       timeout=timeout + 5)
        return agent.parse_answer(done.stdout) if done.returncode == 0 or done.stdout else \
            {"result": "shell", "exit": done.returncode, "stderr": done.stderr}

    def stage(self, package: Path, vsn: str) -> str:
        """Put PACKAGE where the deployer's upload lands; the shell line that
        checks its sha256 and moves it for unpack_release."""
        import hashlib
        part = Path(cmd.upload_path(str(self.root), APP, vsn))
        shutil.copyfile(package, part)
        return cmd.stage_package(str(self.root), APP, vsn, hashlib.sha256(package.read_bytes()).hexdigest())

    def gate(self, **over) -> dict:
        gate = agent.Gate(agent.Health(self.port, "/api/public/version"), timeout_s=5, soak_s=0.3,
                          install_timeout_s=20)
        return {**gate.as_params(), **over}

    def _staged(self, target: Built, package: Path | None, config: str | None) -> tuple[str, dict]:
        """What the deployer sends before a call: the package (and the shell
        line that checks it) and the runtime config."""
        before, extra = "", {}
        if package is not None:
            before = self.stage(package, target.vsn)
            extra["package"] = cmd.package_name(APP, target.vsn)
        if config is not None:
            staged = self.root / "runtime.config.new"
            staged.write_text(config)
            extra["config"] = str(staged)
        return before, extra

    def prepare_restart(self, target: Built, previous: str, package: Path | None = None,
                        config: str | None = None, **over) -> dict:
        """The prepare_restart call as tasks/hosts makes it."""
        before, extra = self._staged(target, package, config)
        params = {"vsn": target.vsn, "previous": previous, "record": RECORD, **extra, **self.gate(), **over}
        return self.call("prepare_restart", before=before, **params)

    def upgrade(self, target: Built, previous: str, package: Path | None = None, config: str | None = None,
                mode: str = "install", **over) -> dict:
        """One upgrade call as tasks/hosts.upgrade_host makes it."""
        before, extra = self._staged(target, package, config)
        params = {"vsn": target.vsn, "previous": previous, "mode": agent.Atom(mode), "record": RECORD, **extra,
                  **self.gate(), **over}
        return self.call("upgrade", before=before, **params)


def unpack_root(tarball: Path, root: Path, home: Path, port: int) -> LocalNode:
    """A release root as provisioning leaves it: the tarball unpacked, a
    runtime config (the app's port), the host's cookie."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="tar")
    (root / "log").mkdir(exist_ok=True)
    (root / "runtime.config").write_text(f"[{{{APP}, [{{port, {port}}}]}}].\n")
    home.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(os.urandom(16).hex())
        cookie.chmod(0o400)
    return LocalNode(root, home, port)
