"""The load probe: hammers every host's service while the fleet is changed
(rehearsals, the demo, the tests, the benchmarks) and counts what failed.
Bounded in time and in requests; stops by itself."""
from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LoadStats:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)          # seconds
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (t since start, latency)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]

    def summary(self) -> dict:
        return {"sent": self.sent, "failed": self.failed,
                "p50_ms": round(self.percentile(50) * 1000, 2), "p99_ms": round(self.percentile(99) * 1000, 2),
                "max_ms": round(max(self.latencies, default=0) * 1000, 2), "errors": self.errors[:5]}


class LoadClient:
    """CONNECTIONS keep-alive connections per address, each in its own thread,
    sending GET PATH, a request every INTERVAL seconds (0: back to back),
    until stop() or MAX_SECONDS / MAX_REQUESTS.

    The default, 20 ms a connection, still puts a request on each host every
    few milliseconds (any refused or reset connection is seen) without
    taking a core from the nodes and the deployer it is meant to watch; the
    benchmark's load, which measures capacity, goes back to back."""

    def __init__(self, addresses: list[str], port: int = 8080, path: str = "/", connections: int = 2,
                 max_seconds: float = 300, max_requests: int = 2_000_000, connect=None, interval: float = 0.02):
        """CONNECT(address) -> an http.client.HTTPConnection (default: TCP to address:port)."""
        self.addresses, self.port, self.path, self.interval = addresses, port, path, interval
        self._connect = connect or (lambda address: http.client.HTTPConnection(address, self.port, timeout=5))
        self.connections, self.max_seconds, self.max_requests = connections, max_seconds, max_requests
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0

    def __enter__(self) -> "LoadClient":
        self._t0 = time.monotonic()
        for address in self.addresses:
            for _ in range(self.connections):
                t = threading.Thread(target=self._hammer, args=(address,), daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> LoadStats:
        self._halt.set()
        for t in self._threads:
            t.join(timeout=10)
        return self.stats

    def _hammer(self, address: str) -> None:
        conn = self._connect(address)
        deadline = self._t0 + self.max_seconds
        while not self._halt.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            error = None
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    error = f"{address}: HTTP {resp.status}"
            except (OSError, http.client.HTTPException) as e:
                error = f"{address}: {type(e).__name__}: {e}"
                conn.close()
                conn = self._connect(address)
            latency = time.monotonic() - start
            with self._lock:
                self.stats.sent += 1
                self.stats.latencies.append(latency)
                self.stats.timeline.append((start - self._t0, latency))
                if error:
                    self.stats.failed += 1
                    self.stats.errors.append(error)
                if self.stats.sent >= self.max_requests:
                    self._halt.set()
            if self.interval > latency:
                self._halt.wait(self.interval - latency)
        conn.close()


class ProbeThroughSsh:
    """The load probe for a rehearsal, sent to each host's app port through
    SSH (works where only SSH is open to the deployer): its own ingress rule
    for the whole probe (the deploys inside see it and add none), one SSH
    connection per host, every probe connection a channel of it."""

    def __init__(self, env, hosts, run_id: str, connections: int = 2, max_seconds: float = 1800):
        self.env, self.hosts, self.run_id = env, hosts, run_id
        self.connections, self.max_seconds = connections, max_seconds
        self.rule = None
        self.ssh: dict = {}
        self.load: LoadClient | None = None

    def __enter__(self) -> LoadClient:
        from .network import authorize_ingress, deployer_cidr
        from .remote import Connection, TunnelledHTTPConnection
        try:
            self.rule = authorize_ingress(self.env, deployer_cidr(self.env, self.hosts[0]), self.run_id)
            self.ssh = {h.address: Connection(self.env, h) for h in self.hosts}
            self.load = LoadClient(list(self.ssh), port=self.env.app_port, connections=self.connections,
                                   max_seconds=self.max_seconds,
                                   connect=lambda a: TunnelledHTTPConnection(self.ssh[a], self.env.app_port))
            return self.load.__enter__()
        except BaseException:
            self._close()
            raise

    def __exit__(self, *exc) -> None:
        self._close()

    def _close(self) -> None:
        from .network import revoke_ingress
        try:
            if self.load is not None:
                self.load.stop()
            for conn in self.ssh.values():
                conn.close()
        finally:
            revoke_ingress(self.env, self.rule)
