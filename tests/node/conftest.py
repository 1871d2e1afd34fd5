"""Fixtures of the node program's tests: releases built once (cached), and
a fresh node per test, started from v1 as provisioning leaves it."""
from __future__ import annotations

import shutil

import pytest

from .node import LocalNode, free_port, unpack_root
from .releases import Built, build


@pytest.fixture(scope="session", autouse=True)
def needs_erlang():
    if not (shutil.which("erl") and shutil.which("rebar3") and shutil.which("erlc")):
        pytest.fail("the node tests need erl, erlc and rebar3 (scripts/install.sh installs them)")


@pytest.fixture(scope="session", autouse=True)
def epmd_of_our_own():
    """Every test node is example_app@127.0.0.1 (the name its release's
    vm.args gives). Names are scoped by the epmd that registers them, so
    each test process (a session, or an xdist worker) gets an epmd on a
    port of its own: processes side by side never meet each other's nodes,
    and the tests run in parallel (scripts/test.sh tests/node)."""
    import os
    import subprocess
    import time
    port = str(free_port())
    os.environ["ERL_EPMD_PORT"] = port      # read by erl, epmd and erl_call alike
    yield port
    # epmd refuses -kill while a name is registered: a node killed a moment
    # ago may still be, until epmd sees its connection close.
    for _ in range(50):
        done = subprocess.run(["epmd", "-kill"], capture_output=True, text=True,
                              env={**os.environ, "ERL_EPMD_PORT": port}, check=False)
        if "Killed" in done.stdout or "Cannot connect" in done.stdout + done.stderr:
            break
        time.sleep(0.1)


class Releases:
    """The example app's versions, each built on first use: v1 (a first
    release), v2 (relup from v1), and builds from any example version."""

    def __init__(self):
        self._built: dict[tuple, Built] = {}

    def get(self, source: str, vsn: str, *predecessors: Built, extra: dict[str, str] | None = None) -> Built:
        key = (source, vsn, tuple(p.vsn for p in predecessors), tuple(sorted((extra or {}).items())))
        if key not in self._built:
            self._built[key] = build(source, vsn, list(predecessors), extra)
        return self._built[key]

    @property
    def v1(self) -> Built:
        return self.get("v1", "1.0.1")

    @property
    def v2(self) -> Built:
        return self.get("v2", "1.0.2", self.v1)


@pytest.fixture(scope="session")
def releases() -> Releases:
    return Releases()


@pytest.fixture
def make_node(tmp_path):
    """make_node(built=None, root=None): a node started from BUILT (v1) in a
    release root of its own; stopped at the end of the test."""
    started: list[LocalNode] = []

    def make(built: Built, root=None) -> LocalNode:
        node = unpack_root(built.tarball, root or tmp_path / f"root{len(started)}", tmp_path / "home", free_port())
        node.start()
        started.append(node)
        return node
    yield make
    for node in started:
        node.stop()


@pytest.fixture
def node(make_node, releases) -> LocalNode:
    return make_node(releases.v1)
