"""The load client's pacing, against a fake connection (pure logic: no
socket). Only an upper bound on the count: a slow machine sends fewer."""
from __future__ import annotations

import time

from tasks.probe import LoadClient


class _Answer:
    status = 200

    def read(self) -> bytes:
        return b"ok"


class _Conn:
    def request(self, method: str, path: str) -> None:
        pass

    def getresponse(self) -> _Answer:
        return _Answer()

    def close(self) -> None:
        pass


def test_a_paced_connection_sends_at_most_one_request_per_interval():
    with LoadClient(["a", "b"], connections=2, connect=lambda a: _Conn(), interval=0.05) as load:
        time.sleep(0.5)
    assert 4 <= load.stats.sent <= 4 * (0.5 / 0.05 + 2), load.stats.summary()
    assert load.stats.failed == 0


def test_interval_zero_goes_back_to_back():
    with LoadClient(["a"], connections=1, connect=lambda a: _Conn(), interval=0, max_requests=5000) as load:
        time.sleep(0.2)
    assert load.stats.sent > 100
