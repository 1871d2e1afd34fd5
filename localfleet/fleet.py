"""Namespace hosts with sshd, and the security-group enforcement thread."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import firewall

BRIDGE = "hdbr0"
GATEWAY = "198.18.0.1"
PREFIX = "hd-"
fleets_started = 0      # in this process: the test session's leak check runs only if it made any
started_here: set[str] = set()    # namespace names this process made (another session may run beside it)
STATE_DIR = Path("/var/lib/hotdeploy-fleet")


def sh(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=input, text=True, capture_output=True, check=check)


@dataclass
class FleetHost:
    name: str          # also the network namespace
    index: int
    dir: Path
    sshd: subprocess.Popen | None = None
    host_key_pub: str = ""

    @property
    def address(self) -> str:
        return f"198.18.0.{self.index}"

    @property
    def veth(self) -> str:
        return f"hdv{self.index}"

    def known_hosts_line(self) -> str:
        return f"{self.address} {self.host_key_pub}"

    def cut(self) -> None:
        """Take the host's link down: connections to it time out."""
        sh("ip", "link", "set", self.veth, "down")

    def restore(self) -> None:
        sh("ip", "link", "set", self.veth, "up")

    def run(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """SCRIPT as root on the host: its network and mount namespaces (those
        of its sshd), as an operator's shell there would run it."""
        return sh("nsenter", "-t", str(self.sshd.pid), "-m", "-n", "sh", "-c", script, check=check)

    def pids(self) -> list[int]:
        out = sh("ip", "netns", "pids", self.name, check=False).stdout.split()
        return [int(p) for p in out]


@dataclass
class Fleet:
    """Hosts 198.18.0.<first>..; the deployer's key pair lives in DIR."""
    name: str
    size: int
    first: int = 10
    hosts: list[FleetHost] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return STATE_DIR / self.name

    @property
    def deployer_key(self) -> Path:
        return self.dir / "deployer_ed25519"

    def known_hosts(self) -> str:
        return "".join(h.known_hosts_line() + "\n" for h in self.hosts)

    def start(self) -> "Fleet":
        if self.first + self.size > 250:
            raise ValueError("the test bridge has room for hosts .10-.249 only")
        global fleets_started
        fleets_started += 1
        ensure_bridge()
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.deployer_key.exists():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"hotdeploy-{self.name}",
               "-f", str(self.deployer_key))
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation dir
        for i in range(self.size):
            self.hosts.append(self._start_host(self.first + i))
        return self

    def _start_host(self, index: int) -> FleetHost:
        name = f"{PREFIX}{self.name}-{index}"
        host = FleetHost(name, index, self.dir / name)
        _remove_netns(name)
        sh("ip", "link", "del", host.veth, check=False)  # left by a killed run
        shutil.rmtree(host.dir, ignore_errors=True)
        for d in ("root", "srv", "tmp", "etc", "run-systemd", "etc-systemd"):
            (host.dir / d).mkdir(parents=True, exist_ok=True)
        (host.dir / "tmp").chmod(0o1777)
        sh("ip", "netns", "add", name)
        started_here.add(name)
        sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", host.veth, "master", BRIDGE, "up")
        ns = ("ip", "netns", "exec", name)
        sh(*ns, "ip", "addr", "add", f"{host.address}/24", "dev", "eth0")
        sh(*ns, "ip", "link", "set", "eth0", "up")
        sh(*ns, "ip", "link", "set", "lo", "up")
        sh(*ns, "ip", "route", "add", "default", "via", GATEWAY)
        etc = host.dir / "etc"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "ssh_host_ed25519_key"))
        host.host_key_pub = " ".join((etc / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        shutil.copy(f"{self.deployer_key}.pub", etc / "authorized_keys")
        (etc / "sshd_config").write_text(
            f"ListenAddress {host.address}\nPort 22\n"
            f"HostKey {etc}/ssh_host_ed25519_key\nPidFile {etc}/sshd.pid\n"
            f"AuthorizedKeysFile {etc}/authorized_keys\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes yes\nMaxStartups 100\n"
            "MaxSessions 50\nLogLevel ERROR\nSubsystem sftp internal-sftp\n")
        apply_firewall(host, firewall.ruleset([]))  # closed until the group allows us
        # Private mounts: each host has its own /root, /srv and /tmp, and no
        # systemd, so what a deploy writes stays on that host.
        binds = " && ".join(f"mount --bind {host.dir / src} {dst}" for src, dst in (
            ("root", "/root"), ("srv", "/srv"), ("tmp", "/tmp"), ("run-systemd", "/run/systemd"),
            ("etc-systemd", "/etc/systemd/system")) if Path(dst).exists() or dst == "/srv")
        Path("/srv").mkdir(exist_ok=True)
        log = open(host.dir / "sshd.log", "w")
        host.sshd = subprocess.Popen(
            [*ns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
             f"{binds} && exec /usr/sbin/sshd -D -e -f {etc}/sshd_config"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_listening(host)
        return host

    def stop(self) -> None:
        for host in self.hosts:
            _remove_netns(host.name)  # kills every process in it first
            if host.sshd:
                try:
                    host.sshd.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    host.sshd.kill()
        self.hosts.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait_listening(host: FleetHost, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sh("ip", "netns", "exec", host.name, "ss", "-ltn", check=False).stdout
        if f"{host.address}:22" in out:
            return
        if host.sshd and host.sshd.poll() is not None:
            raise RuntimeError(f"sshd of {host.name} exited: {(host.dir / 'sshd.log').read_text()[-500:]}")
        time.sleep(0.05)
    raise RuntimeError(f"sshd of {host.name} is not listening after {timeout} s")


def _remove_netns(name: str) -> None:
    if name in sh("ip", "netns", "list", check=False).stdout.split():
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", name, check=False)


def ensure_bridge() -> None:
    """Idempotent, and safe when two test sessions race to make it."""
    if sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        sh("ip", "link", "add", BRIDGE, "type", "bridge", check=False)
    if f"{GATEWAY}/24" not in sh("ip", "-o", "addr", "show", "dev", BRIDGE).stdout:
        sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE, check=False)
    sh("ip", "link", "set", BRIDGE, "up")


def remove_bridge() -> None:
    """Remove the test bridge unless a fleet still uses it (another test
    session, the demo, a benchmark may run beside this one)."""
    if not [n for n in leftovers() if n != BRIDGE]:
        sh("ip", "link", "del", BRIDGE, check=False)


def own_leftovers() -> list[str]:
    """Namespaces of fleets this process started that still exist."""
    present = set(sh("ip", "netns", "list", check=False).stdout.split())
    return sorted(n for n in started_here if n in present)


def leftovers() -> list[str]:
    """Namespaces and bridge this module made that still exist (leak check)."""
    names = [n for n in sh("ip", "netns", "list", check=False).stdout.split() if n.startswith(PREFIX)]
    if sh("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        names.append(BRIDGE)
    return names


def apply_firewall(host: FleetHost, script: str) -> None:
    sh("ip", "netns", "exec", host.name, "nft", "-f", "-", input=script)


class GroupEnforcer(threading.Thread):
    """Keeps every host's nftables table equal to the security group's
    ingress, polling moto's EC2 API (the real wire protocol) every INTERVAL."""

    def __init__(self, ec2, group_id: str, hosts: list[FleetHost], interval: float = 0.1,
                 guarded_ports: tuple[int, ...] = (22,)):
        super().__init__(daemon=True, name=f"enforce-{group_id}")
        self.ec2, self.group_id, self.hosts, self.interval = ec2, group_id, hosts, interval
        self.guarded_ports = guarded_ports
        self._halt = threading.Event()
        self.applied: str | None = None
        self.sync()

    def sync(self) -> None:
        [group] = self.ec2.describe_security_groups(GroupIds=[self.group_id])["SecurityGroups"]
        script = firewall.ruleset(group.get("IpPermissions", []), self.guarded_ports)
        if script != self.applied:
            # Several hosts at a time: one by one, a change took more than the
            # deployer's 30 s of connect attempts to reach the last of 128 busy hosts.
            hosts = list(self.hosts)
            with ThreadPoolExecutor(max_workers=min(16, max(1, len(hosts)))) as pool:
                list(pool.map(lambda host: apply_firewall(host, script), hosts))
            self.applied = script

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.sync()
            except Exception:  # moto going away at teardown
                pass

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
