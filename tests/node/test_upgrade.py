"""The node program's upgrade and downgrade, on a real node: what a deploy
promises when everything works."""
from __future__ import annotations

APP = "example_app"


def test_inspect_says_what_runs_what_boots_and_the_space_in_blocks(node, releases):
    facts = node.call("inspect", target=releases.v2.vsn)
    assert facts["result"] == "done"
    assert facts["running"] == facts["permanent"] == facts["start_script"] == facts["start_erl"] == "1.0.1"
    assert facts["os_pid"] == node.beam_pid()
    assert facts["block_size"] >= 512 and facts["disk_free"] > 0
    assert facts["releases"] == [{"vsn": "1.0.1", "status": "permanent"}]


def test_upgrade_then_downgrade_keeps_the_pid_converts_state_and_moves_what_boots(node, releases):
    v1, v2 = releases.v1, releases.v2
    pid = node.beam_pid()
    node.get("/")
    assert node.shape() == "tuple"
    up = node.upgrade(v2, v1.vsn, package=v2.tarball, config=f"[{{{APP}, [{{port, {node.port}}}]}}].\n")
    assert up["result"] == "done", up
    assert up["running"] == up["permanent"] == up["boots"] == v2.vsn and up["pid_after"] == pid
    assert node.version() == v2.vsn and node.shape() == "map" and node.beam_pid() == pid
    assert node.start_script_vsn() == v2.vsn
    assert set(up["steps"]) >= {"config_check", "record", "unpack", "config", "install", "children", "gate",
                                "permanent"}
    down = node.upgrade(v1, v2.vsn, config_back=True)
    assert down["result"] == "done", down
    assert node.version() == v1.vsn and node.shape() == "tuple" and node.beam_pid() == pid
    assert node.start_script_vsn() == v1.vsn
    lines = node.log_lines()
    assert [line.split(" result=")[1].split()[0] for line in lines] == ["begin", "done", "begin", "done"], lines
    assert " result=begin sup=<0." in lines[0], "the top supervisor at the start: a lost answer can tell a reset"


def test_a_call_made_on_the_record_upgrades_a_node_as_recorded(node, releases):
    """One exchange per host: package and config sent, the node not asked
    first; it runs and has permanent what the record says."""
    v1, v2 = releases.v1, releases.v2
    pid = node.beam_pid()
    up = node.upgrade(v2, v1.vsn, package=v2.tarball, config=f"[{{{APP}, [{{port, {node.port}}}]}}].\n",
                      presumed=True)
    assert up["result"] == "done" and up["from"] == v1.vsn and up["pid_before"] == pid, up
    assert up["running"] == up["permanent"] == up["boots"] == v2.vsn and node.version() == v2.vsn


def test_the_node_program_compiles_without_a_warning():
    """erlc finds an unused variable, a clause that cannot match or a bad
    call before a host does."""
    import subprocess
    import tempfile

    from hotdeploy.agent import SOURCE
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(["erlc", "-Wall", "+warnings_as_errors", "-o", out, str(SOURCE)],
                              capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
