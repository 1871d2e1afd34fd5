"""Supervisor changes both ways: a child a release adds starts with it and
goes when the release is taken back; a child a release removes is stopped at
the upgrade and comes back going down. From the appup the build writes, and,
for an appup that does not say so, from the node program itself."""
from __future__ import annotations

from hotdeploy.agent import Atom, Bin

APP = "example_app"


def children(node) -> str:
    return node.eval("[Id || {Id, P, _, _} <- supervisor:which_children(example_app_sup), is_pid(P)].")


def specs(node) -> str:
    return node.eval("[Id || {Id, _, _, _} <- supervisor:which_children(example_app_sup)].")


def up(node, target, previous, **over) -> dict:
    answer = node.upgrade(target, previous.vsn, package=target.tarball,
                          config=f"[{{{APP}, [{{port, {node.port}}}]}}].\n", **over)
    assert answer["result"] == "done", answer
    return answer


def down(node, target, running, **over) -> dict:
    answer = node.upgrade(target, running.vsn, config_back=True, **over)
    assert answer["result"] == "done", answer
    return answer


def test_a_child_a_release_adds_runs_and_a_rollback_leaves_no_trace_of_it(make_node, releases):
    v2 = releases.v2
    worker = releases.get("new-worker", "1.0.4", v2)
    assert "{apply, {supervisor, restart_child, [example_app_sup, example_app_ticker]}}" in \
        worker.tarball.with_name("appups.txt").read_text(), "the appup starts the child"
    node = make_node(v2)
    pid = node.beam_pid()
    up(node, worker, v2, expected_children=worker.expected_children())
    assert children(node) == "{ok, [example_app_ticker, example_app_counter]}"
    down(node, v2, worker, expected_children=v2.expected_children())
    assert specs(node) == "{ok, [example_app_counter]}", "no process, no spec"
    assert node.eval("{whereis(example_app_ticker), code:is_loaded(example_app_ticker)}.") == \
        "{ok, {undefined, false}}"
    assert node.beam_pid() == pid


def test_a_child_a_release_removes_is_stopped_at_the_upgrade_and_comes_back_going_down(make_node, releases):
    worker = releases.get("new-worker", "1.0.4", releases.v2)
    without = releases.get("v2", "1.0.5", worker)      # the worker removed again
    appups = without.tarball.with_name("appups.txt").read_text()
    assert "{apply, {supervisor, terminate_child, [example_app_sup, example_app_ticker]}}" in appups
    node = make_node(worker)
    up(node, without, worker, expected_children=without.expected_children())
    assert specs(node) == "{ok, [example_app_counter]}"
    down(node, worker, without, expected_children=worker.expected_children())
    assert children(node) == "{ok, [example_app_ticker, example_app_counter]}"


HANDWRITTEN = '''{"1.0.6",
 [{"1.0.2", [{add_module, example_app_ticker}, {update, example_app_sup, supervisor}]}],
 [{"1.0.2", [{update, example_app_sup, supervisor}, {delete_module, example_app_ticker}]}]}.
'''


def test_an_appup_that_says_nothing_of_children_still_leaves_a_sound_tree(make_node, releases):
    """The project's own appup starts no child and removes none: the node
    starts the new one, and on the way down removes the spec whose module
    is gone (its next exit would restart it into `undef` until the node dies)."""
    v2 = releases.v2
    own = releases.get("new-worker", "1.0.6", v2, extra={"ebin/example_app.appup": HANDWRITTEN})
    node = make_node(v2)
    up(node, own, v2)
    assert children(node) == "{ok, [example_app_ticker, example_app_counter]}"
    down(node, v2, own)      # an older manifest: no declared tree to go by
    assert specs(node) == "{ok, [example_app_counter]}"


def test_a_declared_child_missing_from_the_tree_fails_the_gate(make_node, releases):
    """The tree is held to what the release declares: a child the build saw
    in init/1 that the running supervisor does not have is a failed gate."""
    v2 = releases.v2
    worker = releases.get("new-worker", "1.0.4", v2)
    node = make_node(v2)
    pid = node.beam_pid()
    ids = worker.expected_children()[0]["ids"] + [Bin("example_app_ghost")]
    answer = node.upgrade(worker, v2.vsn, package=worker.tarball, config=f"[{{{APP}, [{{port, {node.port}}}]}}].\n",
                          expected_children=[{"sup": Atom("example_app_sup"), "ids": ids}])
    assert answer["result"] == "rolled_back" and answer["step"] == "gate", answer
    assert "example_app_sup declares example_app_ghost, which is not in the tree" in answer["detail"]
    assert specs(node) == "{ok, [example_app_counter]}" and node.beam_pid() == pid
