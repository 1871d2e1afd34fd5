"""A release that cannot be hot-loaded, moved by a restart: made what boots
without being installed, the node stopped and started, the new node gated;
on a failed gate, the previous release boots again and is gated."""
from __future__ import annotations

from hotdeploy import commands as cmd
from hotdeploy.agent import Atom, Tuple

from .node import RECORD

APP = "example_app"


def config(node) -> str:
    return f"[{{{APP}, [{{port, {node.port}}}]}}].\n"


def results(node) -> list[str]:
    return [line.split(" result=")[1].split()[0] for line in node.log_lines()]


def close(slot: int, frm: str, to: str, done: str, failed: str = "none") -> dict:
    return {"slot": slot, "from": frm, "to": to, "done": Atom(done), "failed": Atom(failed)}


def test_a_restart_boots_the_new_release_and_its_gate_closes_the_record(node, releases):
    v1, v2 = releases.v1, releases.v2
    pid = node.beam_pid()
    node.get("/")
    prep = node.prepare_restart(v2, v1.vsn, package=v2.tarball, config=config(node))
    assert prep["result"] == "done" and prep["boots"] == v2.vsn and prep["running"] == v1.vsn, prep
    assert node.version() == v1.vsn and node.beam_pid() == pid, "prepared, not installed: v1 still serves"
    down = node.stop_and_start()
    assert node.version() == v2.vsn and node.beam_pid() != pid and down < 30
    gate = node.call("gate", vsn=v2.vsn, record=RECORD, close=close(prep["record_slot"], v1.vsn, v2.vsn, "restarted"),
                     **node.gate())
    assert gate["result"] == "done" and gate["permanent"] == gate["boots"] == v2.vsn, gate
    assert node.shape() == "map", "a restart starts from v2's own initial state"
    assert results(node) == ["begin", "restarted"]
    node.restart()
    assert node.version() == v2.vsn, "and a later restart boots it too"


def test_a_new_node_that_fails_its_gate_is_restarted_into_the_previous_release(node, releases):
    v1 = releases.v1
    resets = releases.get("reset-health", "1.0.2", v1)
    prep = node.prepare_restart(resets, v1.vsn, package=resets.tarball, config=config(node))
    node.stop_and_start()
    gate = node.call("gate", vsn=resets.vsn, record=RECORD, close=close(prep["record_slot"], v1.vsn, resets.vsn,
                                                                         "restarted"), **node.gate(health_timeout_ms=1500))
    assert gate["result"] == "failed" and "health gate" in gate["detail"], gate
    # the way back: the new node stopped, v1 made what boots in a VM of its own, started, gated
    node.sh(cmd.stop_node(str(node.root), APP, gate["pid_after"], 30))
    back = node.set_boot_fresh(v1.vsn)
    assert back["result"] == "done" and back["boots"] == v1.vsn and back["config_restored"] is True, back
    node.sh(cmd.start_node(str(node.root), APP, 30))
    node.wait_answering()
    gate = node.call("gate", vsn=v1.vsn, record=RECORD,
                     close=close(prep["record_slot"], v1.vsn, resets.vsn, "rolled_back", "failed"), **node.gate())
    assert gate["result"] == "done" and gate["permanent"] == gate["running"] == v1.vsn, gate
    assert results(node) == ["begin", "rolled_back"]


def test_a_prepare_that_fails_leaves_what_boots_and_the_config_as_they_were(node, releases):
    v1, v2 = releases.v1, releases.v2
    before = (node.root / "releases" / "RELEASES").read_text()
    prep = node.prepare_restart(v2, v1.vsn, package=v2.tarball, config=f"[{{{APP}, [{{port, {node.port}}}, "
                                                                       f"{{greeting, \"Hi\"}}]}}].\n",
                                fault=Atom("boot"))
    assert prep["result"] == "failed" and prep["step"] == "boot" and prep["boots"] == v1.vsn, prep
    assert "Hi" not in (node.root / "runtime.config").read_text()
    assert (node.root / "releases" / "RELEASES").read_text().count("permanent") == before.count("permanent")
    assert node.start_script_vsn() == v1.vsn and results(node) == ["begin", "failed"]
    node.restart()
    assert node.version() == v1.vsn


def test_drain_calls_the_apps_function_then_waits(node):
    answer = node.call("drain", drain_mfa=Tuple((Atom("erlang"), Atom("system_info"), [Atom("otp_release")])),
                       drain_ms=200)
    assert answer["result"] == "done" and answer["detail"] == '"25"' and answer["steps"]["drain"] < 1, answer
