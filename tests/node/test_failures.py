"""Every way an upgrade can fail on the node: refused before anything
changes, or taken back after the node changed, whatever the error's class;
always in words, always with a closing line in hotdeploy.log."""
from __future__ import annotations

from pathlib import Path

from hotdeploy.agent import Atom, Bin

APP = "example_app"


def results(node) -> list[str]:
    return [line.split(" result=")[1].split()[0] for line in node.log_lines()]


def assert_back_on_v1(node, releases, pid):
    """The host as it was: v1 runs, is permanent, and boots; same process."""
    v1 = releases.v1.vsn
    facts = node.call("inspect")
    assert (facts["running"], facts["permanent"], facts["start_script"], facts["start_erl"]) == (v1, v1, v1, v1)
    assert node.version() == v1 and node.beam_pid() == pid


def config(node, extra: str = "") -> str:
    return f"[{{{APP}, [{{port, {node.port}}}{extra}]}}].\n"


# -- refused before anything changes -------------------------------------

def test_an_invalid_runtime_config_changes_nothing_and_quotes_no_secret(node, releases):
    answer = node.upgrade(releases.v2, releases.v1.vsn, package=releases.v2.tarball,
                          config='[{example_app, [{api_token, "s3cr3t"}\n')
    assert answer["result"] == "failed" and answer["step"] == "config_check", answer
    assert "not valid Erlang config (syntax error at line" in answer["detail"] and "s3cr3t" not in answer["detail"]
    assert not (node.root / "runtime.config.new").exists(), "the staged secret is removed"
    assert not (node.root / "releases" / releases.v2.vsn).exists() and node.log_lines() == []
    assert node.version() == releases.v1.vsn


def test_a_node_that_changed_since_preflight_is_left_alone(node, releases):
    answer = node.upgrade(releases.v2, "0.9.9", package=releases.v2.tarball, config=config(node))
    assert answer["result"] == "failed" and answer["step"] == "preflight", answer
    assert answer["detail"] == "the node runs 1.0.1, not 0.9.9 as it did at preflight (another deploy?): nothing done"
    assert node.log_lines() == [] and node.version() == releases.v1.vsn


def test_a_call_made_on_the_record_refuses_a_node_not_as_recorded_and_removes_what_was_staged(node, releases):
    """One exchange per host: the deployer sent the package and the config
    and called without asking first. A node that runs something else, or
    has the target unpacked, says so (step `presumed`) and nothing is done."""
    v1, v2 = releases.v1, releases.v2
    answer = node.upgrade(v2, "0.9.9", package=v2.tarball, config=config(node), presumed=True)
    assert answer["result"] == "failed" and answer["step"] == "presumed", answer
    assert answer["detail"] == "the node is not as recorded (runs 1.0.1, permanent 1.0.1; recorded: 0.9.9): nothing done"
    assert not (node.root / "runtime.config.new").exists() and not (node.root / "releases" / v2.vsn).exists()
    assert not list((node.root / "releases").glob("*.tar.gz")), "the staged package is removed"
    assert node.log_lines() == [] and node.version() == v1.vsn
    up = node.upgrade(v2, v1.vsn, package=v2.tarball, config=config(node))
    down = node.upgrade(v1, v2.vsn, config_back=True)
    assert up["result"] == down["result"] == "done", (up, down)
    again = node.upgrade(v2, v1.vsn, config=config(node), presumed=True)     # v2 stays unpacked, as `old`
    assert again["result"] == "failed" and again["step"] == "presumed", again
    assert again["detail"].endswith(f", {v2.vsn} unpacked; recorded: {v1.vsn}): nothing done")
    assert node.version() == v1.vsn and len(node.log_lines()) == 4


def test_a_corrupt_package_is_removed_with_everything_it_unpacked(node, releases, tmp_path):
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(releases.v2.tarball.read_bytes()[:200_000])   # a cut transfer, with its own checksum
    before = sorted(str(p.relative_to(node.root)) for p in node.root.rglob("*"))
    answer = node.upgrade(releases.v2, releases.v1.vsn, package=corrupt, config=config(node))
    assert answer["result"] == "failed" and answer["step"] == "unpack", answer
    assert "nothing installed" in answer["detail"]
    after = sorted(str(p.relative_to(node.root)) for p in node.root.rglob("*"))
    assert [p for p in after if p not in before] == ["hotdeploy.log"], "no file of the package is left"
    assert results(node) == ["begin", "failed"]
    assert node.version() == releases.v1.vsn


def test_stale_files_of_an_unpack_that_died_are_replaced_not_kept(node, releases):
    """release_handler extracts with keep_old_files: an empty start script
    left by an unpack that died would survive and be made bin/<rel>."""
    v2 = releases.v2.vsn
    stale = node.root / "bin" / f"{APP}-{v2}"
    stale.write_text("")
    (node.root / "releases" / v2).mkdir()
    (node.root / "releases" / v2 / "start.boot").write_text("")
    answer = node.upgrade(releases.v2, releases.v1.vsn, package=releases.v2.tarball, config=config(node))
    assert answer["result"] == "done", answer
    assert stale.stat().st_size > 0 and node.start_script_vsn() == v2
    node.restart()
    assert node.version() == v2, "a restart boots what the deploy reported"


# -- refused by release_handler after the node's record began -------------

def test_a_relup_that_does_not_start_from_what_runs_is_refused_in_words(node, releases):
    v3_from_v2 = releases.get("v3", "1.0.3", releases.v2)
    pid = node.beam_pid()
    answer = node.upgrade(v3_from_v2, releases.v1.vsn, package=v3_from_v2.tarball, config=config(node))
    assert answer["result"] == "rolled_back" and answer["step"] == "install", answer
    assert "release_handler refuses to install 1.0.3: its relup does not go from 1.0.1 to 1.0.3" in answer["detail"]
    assert_back_on_v1(node, releases, pid)
    assert results(node) == ["begin", "rolled_back"]


# -- after the node changed: the way back --------------------------------

def test_an_install_slower_than_its_bound_is_waited_for_then_taken_back(node, releases):
    slow = releases.get("slow-install", "1.0.2", releases.v1)
    pid = node.beam_pid()
    node.get("/")
    answer = node.upgrade(slow, releases.v1.vsn, package=slow.tarball, config=config(node), install_timeout_ms=500)
    assert answer["result"] == "rolled_back" and answer["step"] == "install", answer
    assert "did not finish within 500 ms" in answer["detail"]
    assert answer["steps"]["back_wait"] > 1.0, "the way back waited for the install still running"
    assert "back" in answer["steps"], "then installed v1 again"
    assert_back_on_v1(node, releases, pid)
    assert node.shape() == "tuple"


def test_an_endpoint_that_resets_connections_fails_the_gate_and_the_host_goes_back(node, releases):
    resets = releases.get("reset-health", "1.0.2", releases.v1)
    pid = node.beam_pid()
    answer = node.upgrade(resets, releases.v1.vsn, package=resets.tarball, config=config(node),
                          health_timeout_ms=1500)
    assert answer["result"] == "rolled_back" and answer["step"] == "gate", answer
    assert "health gate" in answer["detail"] and "back on 1.0.1" in answer["detail"]
    assert_back_on_v1(node, releases, pid)
    assert results(node) == ["begin", "rolled_back"]


def test_an_error_at_permanence_of_any_class_goes_the_way_back(node, releases):
    pid = node.beam_pid()
    answer = node.upgrade(releases.v2, releases.v1.vsn, package=releases.v2.tarball, config=config(node),
                          fault=Atom("permanent"))
    assert answer["result"] == "rolled_back" and answer["step"] == "permanent", answer
    assert answer["detail"].startswith("fault injected at permanent (a drill); back on 1.0.1"), answer
    assert_back_on_v1(node, releases, pid)


def test_the_config_in_force_comes_back_with_the_version(node, releases):
    node.upgrade(releases.v2, releases.v1.vsn, package=releases.v2.tarball,
                 config=config(node, ', {greeting, "Hi"}'), fault=Atom("gate"))
    assert "Hi" not in (node.root / "runtime.config").read_text(), "v1's config is in force again"
    assert node.get("/").startswith("Hello")


def test_when_going_back_fails_too_it_says_what_runs_and_what_boots(node, releases):
    answer = node.upgrade(releases.v2, releases.v1.vsn, package=releases.v2.tarball, config=config(node),
                          health_timeout_ms=600, health=dict(node.gate()["health"], body=Bin("nonsense")))
    assert answer["result"] == "failed" and answer["step"] == "gate", answer
    assert "going back to 1.0.1 failed too (at back_gate" in answer["detail"]
    assert "the node runs 1.0.1 and a restart boots 1.0.1: needs attention" in answer["detail"]
    assert results(node) == ["begin", "failed"]


# -- the call itself ------------------------------------------------------

def test_a_module_the_node_cannot_load_is_an_answer_not_a_crash(node):
    answer = node.call("inspect", beam=b"not a beam")
    assert answer["result"] == "failed" and answer["step"] == "load", answer
    assert "the node runs OTP" in answer["detail"]
    assert node.eval("code:is_loaded(hotdeploy_node).") == "{ok, false}"


def test_the_module_is_gone_from_the_node_after_a_call(node):
    assert node.call("inspect")["result"] == "done"
    assert node.eval("code:is_loaded(hotdeploy_node).") == "{ok, false}"
    assert node.eval("erlang:check_old_code(hotdeploy_node).") == "{ok, false}"


def test_the_gate_alone_and_a_first_boot(node, releases, tmp_path):
    assert node.call("gate", vsn=releases.v1.vsn, **node.gate())["result"] == "done"
    failed = node.call("gate", vsn="9.9.9", **node.gate(health_timeout_ms=300))
    assert failed["result"] == "failed" and "health gate: the node runs 1.0.1" in failed["detail"]
    # first_boot runs in a VM of its own before the node exists: RELEASES made when missing
    fresh = Path(tmp_path / "fresh")
    from .node import unpack_root
    bare = unpack_root(releases.v1.tarball, fresh, node.home, node.port)
    (fresh / "releases" / "RELEASES").unlink()
    from hotdeploy import agent
    from hotdeploy import commands as cmd
    from tasks.nodeprogram import node_program
    done = bare.sh(cmd.on_fresh_vm(str(fresh)),
                   stdin=agent.program(agent.call_params("first_boot", str(fresh), APP, vsn=releases.v1.vsn),
                                       node_program()))
    answer = agent.parse_answer(done.stdout)
    assert answer["result"] == "done" and answer["releases_made"] is True, (answer, done.stderr)
    assert (fresh / "releases" / "RELEASES").is_file()


def test_two_calls_at_once_to_one_node_both_answer(node):
    """erl_call names itself c17 unless told: two at once (an observe beside
    an upgrade, two operators) would share that name and one could not
    connect. Each call names itself by its own process."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        for _ in range(10):
            answers = list(pool.map(lambda _: node.eval("timer:sleep(20), ok."), range(2)))
            assert all("ok" in a for a in answers), answers   # the one that cannot connect prints nothing
