"""Remote hosts over SSH (paramiko).

Strict host keys: only the environment's known_hosts are trusted and an
unknown or changed key is refused, never added. Every command has a timeout
(a cut-off host otherwise hangs for minutes); connecting is retried since
networks flake, but a wrong host key or a refused login is not.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import io
import socket
import threading
import time
from dataclasses import dataclass

import paramiko

from blocks.environment import DeployEnvironment


class RemoteError(RuntimeError):
    pass


class HostKeyRejected(RemoteError):
    pass


class CommandTimeout(RemoteError):
    pass


@dataclass(frozen=True)
class Host:
    instance_id: str
    name: str
    address: str

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"


@dataclass
class CommandResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


_private_keys: dict[str, paramiko.PKey] = {}
_private_keys_lock = threading.Lock()


def private_key(text: str) -> paramiko.PKey:
    """The deployer's key, loaded once per process (keyed by a digest, never
    the text): loading an RSA key costs ~0.1 CPU-s (the key is checked),
    twice the rest of a host's deployer-side work."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    with _private_keys_lock:
        key = _private_keys.get(digest)
        if key is None:
            if len(_private_keys) >= 4:
                _private_keys.clear()
            key = _private_keys[digest] = load_private_key(text)
        return key


def load_private_key(text: str) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    # No detail: the exception text must not carry any part of the key.
    raise RemoteError("the environment's ssh_private_key is not a readable OpenSSH/PEM private key")


@functools.lru_cache(maxsize=4)
def _host_keys(known_hosts: str) -> paramiko.HostKeys:
    """The environment's known_hosts, parsed once per text (read-only after):
    parsed on every host's connect it cost each host a line per host of the
    fleet, 16 ms a host at 1000 hosts."""
    keys = paramiko.HostKeys()
    for line in known_hosts.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        if entry is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return keys


def _short(command: str) -> str:
    return command if len(command) <= 100 else command[:97] + "..."


# AES-GCM first: its tag is checked inside OpenSSL, where CTR's HMAC is
# compared byte by byte in Python by paramiko, for every packet. Every
# OpenSSH since 6.2 has it; a server without it gets the usual order.
_PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _transport(sock, **kwargs) -> paramiko.Transport:
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    options.ciphers = _PREFERRED_CIPHERS + tuple(c for c in options.ciphers if c not in _PREFERRED_CIPHERS)
    return transport


class Connection:
    """One SSH connection to a host, used for all of that host's steps."""

    def __init__(self, env: DeployEnvironment, host: Host, attempts: int = 3):
        self.env, self.host = env, host
        self.client = self._connect(attempts)

    def _socket(self) -> socket.socket:
        """TCP to the host, retried fast while a fresh ingress rule takes
        effect: short waits for the first SYNs (the kernel would resend only
        after 1 s), within connect_timeout_seconds in all."""
        env, host = self.env, self.host
        deadline = time.monotonic() + env.connect_timeout_seconds
        wait = 0.2
        while True:
            left = deadline - time.monotonic()
            try:
                return socket.create_connection((host.address, env.ssh_port), timeout=max(0.05, min(wait, left)))
            except OSError:
                if time.monotonic() + 0.05 >= deadline:
                    raise
                time.sleep(0.05 if wait < 1 else 0.2)
                wait = min(wait * 2, 2.0)

    def _connect(self, attempts: int) -> paramiko.SSHClient:
        env, host = self.env, self.host
        pkey = private_key(env.ssh_private_key.get_secret_value())
        last: Exception | None = None
        for attempt in range(attempts):
            client = paramiko.SSHClient()
            lookup = host.address if env.ssh_port == 22 else f"[{host.address}]:{env.ssh_port}"
            for name in (lookup,):
                for keytype, key in (_host_keys(env.known_hosts).lookup(name) or {}).items():
                    client.get_host_keys().add(name, keytype, key)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                sock = self._socket()
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # ~45 ms saved per command
                client.connect(host.address, port=env.ssh_port, username=env.ssh_user, pkey=pkey, sock=sock,
                               timeout=env.connect_timeout_seconds, banner_timeout=env.connect_timeout_seconds,
                               auth_timeout=env.connect_timeout_seconds, look_for_keys=False,
                               allow_agent=False, transport_factory=_transport)
                transport = client.get_transport()
                # Opening a channel (exec, SFTP) on a cut link waits an hour by default.
                transport.channel_timeout = env.command_timeout_seconds
                transport.set_keepalive(5)
                return client
            except paramiko.BadHostKeyException:
                client.close()
                raise HostKeyRejected(
                    f"{host}: its host key does not match known_hosts (changed or spoofed host); "
                    "nothing was done. Verify the host and update the environment's known_hosts") from None
            except paramiko.SSHException as e:
                client.close()
                if "not found in known_hosts" in str(e):
                    raise HostKeyRejected(
                        f"{host}: host key is not in the environment's known_hosts; nothing was done. "
                        "Add the host's key (ssh-keyscan, checked out of band) to known_hosts") from None
                if isinstance(e, paramiko.AuthenticationException):
                    raise RemoteError(f"{host}: login as {env.ssh_user} refused: {e}") from None
                last = e
            except OSError as e:
                client.close()
                last = e
            time.sleep(min(0.5 * 2 ** attempt, 3))
        raise RemoteError(f"{host}: unreachable over SSH after {attempts} attempts: {last}")

    def run(self, command: str, timeout: float | None = None, stdin: str | None = None) -> CommandResult:
        timeout = timeout or self.env.command_timeout_seconds
        try:
            writer, stdout, stderr = self.client.exec_command(command, timeout=timeout)
            channel = stdout.channel
            if stdin is not None:
                try:
                    writer.write(stdin)
                    writer.flush()
                    channel.shutdown_write()
                except OSError:
                    # The command ended before it read all of its input (erl_call
                    # that finds no node exits at once): its status and output
                    # say why, not "Socket is closed".
                    pass
            deadline = time.monotonic() + timeout
            # Woken by the exit status itself (paramiko sets status_event): no
            # 20 ms polling per command, nor its wakeups at a large fleet.
            while not channel.status_event.wait(0.2):
                if channel.closed and not channel.exit_status_ready():
                    raise RemoteError(f"{self.host}: `{_short(command)}`: the connection was lost before the "
                                      "command ended")
                if time.monotonic() > deadline:
                    channel.close()
                    raise CommandTimeout(f"{self.host}: `{_short(command)}` did not finish within {timeout:g} s")
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            return CommandResult(command, channel.recv_exit_status(), out, err)
        except (socket.timeout, paramiko.SSHException, OSError) as e:
            raise RemoteError(f"{self.host}: `{_short(command)}` failed: {e or type(e).__name__}") from None

    def check(self, command: str, timeout: float | None = None, what: str | None = None) -> CommandResult:
        result = self.run(command, timeout)
        if result.exit_code != 0:
            raise RemoteError(f"{self.host}: {what or command} failed (exit {result.exit_code}): "
                              f"{result.output[-800:]}")
        return result

    def _sftp(self) -> paramiko.SFTPClient:
        """An SFTP session whose every read times out (paramiko's open_sftp
        waits forever for the server's version on a cut link)."""
        timeout = self.env.command_timeout_seconds
        channel = self.client.get_transport().open_session(timeout=timeout)
        channel.settimeout(timeout)
        channel.invoke_subsystem("sftp")
        return paramiko.SFTPClient(channel)

    @contextlib.contextmanager
    def _watchdog(self):
        """paramiko's writes retry for ever on a cut link once the socket
        buffer is full (TCP gives up after ~15 min): if no progress is
        reported for command_timeout_seconds, close the connection. Yields
        the function that reports progress; sets .stalled."""
        last = [time.monotonic()]
        done = threading.Event()
        stalled = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                if time.monotonic() - last[0] > self.env.command_timeout_seconds:
                    stalled.set()
                    self.client.close()
                    return
        watchdog = threading.Thread(target=watch, daemon=True)
        watchdog.start()
        try:
            yield lambda *_: last.__setitem__(0, time.monotonic()), stalled
        finally:
            done.set()

    def put_file(self, local_path: str, remote_path: str) -> None:
        """Upload, closing the connection if it makes no progress (_watchdog)."""
        self.upload(files=[(local_path, remote_path)])

    def put_text(self, text: str, remote_path: str, mode: int = 0o600) -> None:
        """Write TEXT (it may be secret: it never appears in a command line or
        error), within command_timeout_seconds (a cut link would hang it)."""
        self.upload(texts=[(text, remote_path, mode)])

    def upload(self, files: list[tuple[str, str]] = (), texts: list[tuple[str, str, int]] = ()) -> None:
        """FILES (local, remote) and TEXTS (text, remote, mode) in one SFTP
        session (each session is a process on the host), closing the
        connection if it makes no progress (_watchdog). A text may be secret:
        an error names only its path."""
        with self._watchdog() as (progress, stalled):
            remote_path = ""
            try:
                with self._sftp() as sftp:
                    for local_path, remote_path in files:
                        sftp.put(local_path, remote_path, callback=progress)
                    for text, remote_path, mode in texts:
                        with sftp.open(remote_path, "w") as f:
                            f.chmod(mode)
                            f.write(text)
                        progress()
            except (socket.timeout, paramiko.SSHException, OSError, EOFError) as e:
                if stalled.is_set():
                    raise RemoteError(f"{self.host}: upload to {remote_path} made no progress for "
                                      f"{self.env.command_timeout_seconds:g} s (link cut?); connection closed"
                                      ) from None
                why = (str(e) if remote_path not in {t[1] for t in texts} else "") or type(e).__name__
                raise RemoteError(f"{self.host}: upload to {remote_path} failed: {why}") from None

    def close(self) -> None:
        self.client.close()


class TunnelledHTTPConnection(http.client.HTTPConnection):
    """HTTP to PORT on a host's own loopback, through its SSH connection (a
    direct-tcpip channel): for fleets whose app port the deployer cannot reach."""

    def __init__(self, ssh: Connection, port: int, timeout: float = 5):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self._ssh = ssh

    def connect(self) -> None:
        try:
            channel = self._ssh.client.get_transport().open_channel(
                "direct-tcpip", ("127.0.0.1", self.port), ("127.0.0.1", 0), timeout=self.timeout)
        except (paramiko.SSHException, OSError, EOFError, AttributeError) as e:
            raise ConnectionError(f"{self._ssh.host}: no tunnel to port {self.port}: {e}") from None
        channel.settimeout(self.timeout)
        self.sock = channel
