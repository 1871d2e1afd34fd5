"""What the node says of how the service behaves during a soak, as numbers:
probes from inside the node (failures, latency), log events, child restarts,
the VM. And an upgrade that stops short of permanence, committed later."""
from __future__ import annotations

from hotdeploy.agent import Atom

APP = "example_app"


def config(node) -> str:
    return f"[{{{APP}, [{{port, {node.port}}}]}}].\n"


def test_a_baseline_host_is_observed_without_a_change(node):
    answer = node.call("observe", window_ms=1000, probe_path="/", **node.gate())
    s = answer["signals"]
    # a probe every 100 ms: fewer when the machine is busy, never more
    assert answer["result"] == "done" and 3 <= s["probes"] <= 11 and s["failed"] == 0, s
    assert 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["error_events"] == s["warning_events"] == s["child_restarts"] == 0
    assert s["processes_end"] > 50 and s["memory_end_mb"] > 5 and s["max_queue"] >= 0
    assert node.get("/api/public/state").startswith("hits="), "the probes reached the app"


def test_a_canary_window_probes_at_the_pace_it_is_given(node):
    answer = node.call("observe", window_ms=1000, probe_path="/", probe_ms=20, **node.gate())
    s = answer["signals"]
    # a probe every 20 ms: five times the soak's pace, never more than the window holds
    assert answer["result"] == "done" and s["probe_ms"] == 20 and 15 <= s["probes"] <= 51, s
    assert s["failed"] == 0 and s["processes_end"] > 50, "the VM is still sampled (every 500 ms)"


def test_a_probe_pace_that_is_not_a_pace_is_refused_in_words(node):
    answer = node.call("observe", window_ms=1000, probe_path="/", probe_ms=0, **node.gate())
    assert answer["result"] == "failed" and answer["step"] == "observe", answer
    assert answer["detail"] == "probe_ms must be a whole number of milliseconds above 0, not 0", answer


def test_a_slower_release_shows_in_the_soak(node, releases):
    v1 = releases.v1
    slow = releases.get("slow-endpoint", "1.0.2", v1)
    up = node.upgrade(slow, v1.vsn, package=slow.tarball, config=config(node), soak_ms=1000, probe_path="/")
    assert up["result"] == "done", up
    assert up["signals"]["p50_ms"] >= 100 and up["signals"]["failed"] == 0, up["signals"]


def test_a_release_that_answers_errors_shows_in_the_soak(node, releases):
    v1 = releases.v1
    errors = releases.get("errors-endpoint", "1.0.2", v1)
    up = node.upgrade(errors, v1.vsn, package=errors.tarball, config=config(node), soak_ms=3000, probe_path="/")
    assert up["result"] == "done", "no crash, no error event: the gate alone cannot see it"
    s = up["signals"]
    # one request in ten answers 500: about a tenth of the probes fail
    assert s["probes"] >= 10 and 1 <= s["failed"] <= s["probes"] // 10 + 1 and s["error_events"] == 0, s


def test_an_upgrade_that_is_not_committed_is_not_what_a_restart_boots(node, releases):
    v1, v2 = releases.v1, releases.v2
    up = node.upgrade(v2, v1.vsn, package=v2.tarball, config=config(node), commit=False)
    assert up["result"] == "installed" and up["running"] == v2.vsn, up
    assert up["permanent"] == up["boots"] == v1.vsn, "until it is committed, a restart boots v1"
    done = node.upgrade(v2, v1.vsn, mode="finish", soak_ms=0)
    assert done["result"] == "done" and done["permanent"] == done["boots"] == v2.vsn, done
    node.restart()
    assert node.version() == v2.vsn


def test_a_node_restarted_before_the_commit_comes_back_on_the_old_release(node, releases):
    """release_handler's own rule: a release installed but not permanent is
    dropped when the node restarts (Ericsson's fallback)."""
    v1, v2 = releases.v1, releases.v2
    node.upgrade(v2, v1.vsn, package=v2.tarball, config=config(node), commit=False)
    node.restart()
    assert node.version() == v1.vsn
    facts = node.call("inspect")
    assert facts["running"] == facts["permanent"] == v1.vsn
