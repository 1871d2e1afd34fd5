"""Local services the demo and the benchmarks start: a Prefect server
(sqlite) and moto's server, on 127.0.0.1 only."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status < 500
    except OSError:
        return False


def wait_for(url: str, what: str, seconds: float = 120, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(url):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before answering at {url}")
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer at {url} within {seconds:.0f} s")


# Deploy locks are concurrency leases: kept on disk, a server restart does not
# leave a dead holder's slot taken for ever (the default keeps them in memory).
LEASE_STORAGE = "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect.server.concurrency.lease_storage.filesystem"


def prefect_server_cmd(port: int) -> list[str]:
    return ["env", LEASE_STORAGE, sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
            "--port", str(port)]


def moto_server_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def rss_kb(pid: int, field: str = "VmHWM") -> int:
    """A process's peak (VmHWM) or current (VmRSS) resident memory, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0
