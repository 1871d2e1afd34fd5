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
    sending GET PATH back to back until stop() or MAX_SECONDS / MAX_REQUESTS."""

    def __init__(self, addresses: list[str], port: int = 8080, path: str = "/", connections: int = 2,
                 max_seconds: float = 300, max_requests: int = 2_000_000):
        self.addresses, self.port, self.path = addresses, port, path
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
        conn = http.client.HTTPConnection(address, self.port, timeout=5)
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
                conn = http.client.HTTPConnection(address, self.port, timeout=5)
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
        conn.close()
