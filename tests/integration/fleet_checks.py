"""What the tests read off the fleet, independently of the code under test:
HTTP from the deployer's side, OS pids from /proc of the host's namespace."""
from __future__ import annotations

import http.client
from pathlib import Path


def get(address: str, path: str) -> str:
    conn = http.client.HTTPConnection(address, 8080, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode().strip()
    finally:
        conn.close()


def version(host) -> str:
    return get(host.address, "/api/public/version")


def state(host) -> tuple[int, str]:
    """(hits, shape) from the gen_server, e.g. (42, 'tuple')."""
    text = get(host.address, "/api/public/state")
    fields = dict(part.split("=") for part in text.split())
    return int(fields["hits"]), fields["shape"]


def beam_pid(host) -> int:
    """The OS pid of the node's emulator, read from /proc (not from our code)."""
    pids = [p for p in host.pids() if Path(f"/proc/{p}/comm").exists()
            and Path(f"/proc/{p}/comm").read_text().strip().startswith("beam")]
    assert len(pids) == 1, f"{host.name}: expected one beam process, found {pids}"
    return pids[0]


def releases_on(host) -> list[str]:
    root = host.dir / "srv" / "example_app" / "releases"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
