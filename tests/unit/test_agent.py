"""The node program's parameters and answer as text (pure)."""
import pytest

from hotdeploy import agent
from hotdeploy.agent import Atom, Bin


def test_parameters_as_erlang_terms():
    text = agent.term({"op": Atom("upgrade"), "vsn": "1.2.3", "n": 5, "on": True, "none": None,
                       "body": Bin("{version}"), "list": ["a", 1]})
    assert text == ('#{op => upgrade, vsn => "1.2.3", n => 5, on => true, none => undefined, '
                    'body => <<"{version}"/utf8>>, list => ["a", 1]}')


def test_strings_are_escaped_and_stay_ascii():
    assert agent.term('a"b\\c') == '"a\\"b\\\\c"'
    assert agent.term("é\n") == '"\\x{e9}\\x{a}"'
    assert agent.term(Atom("Elixir.Shop.Sup")) == "'Elixir.Shop.Sup'"
    assert agent.term(Atom("rm -rf'; x")) == "'rm -rf\\'; x'"
    with pytest.raises(ValueError):
        agent.term(Atom(""))


def test_program_binds_p_then_loads_calls_and_purges_the_module():
    text = agent.program({"op": Atom("inspect")}, beam=b"BEAM")
    lines = text.splitlines()
    assert lines[0] == "P = #{op => inspect},"
    assert lines[1] == 'HotdeployBeam = base64:decode(<<"QkVBTQ==">>),'
    assert "code:load_binary(hotdeploy_node," in text and "hotdeploy_node:run(P)" in text
    assert "after code:delete(hotdeploy_node), code:soft_purge(hotdeploy_node)" in text
    assert text.isascii() and text.endswith("end.\n")


def test_a_module_that_will_not_load_answers_in_json_words():
    import json
    text = agent.program({"op": Atom("inspect")}, beam=b"x")
    assert json.loads(agent._LOAD_FAILED)["step"] == "load"
    assert "io_lib:format(" + agent._string(agent._LOAD_FAILED) + ", [HotdeployWhy," in text
    assert "hosts' OTP release or an older one" in agent._LOAD_FAILED


def test_answer_parsing():
    assert agent.parse_answer('{ok, "{"result":"done","steps":{"gate":1.0}}"}\n') == \
        {"result": "done", "steps": {"gate": 1.0}}
    with pytest.raises(agent.ProgramFailed):
        agent.parse_answer('{error, "*** eval: {\'EXIT\', boom}"}')
    with pytest.raises(agent.NodeUnreachable):
        agent.parse_answer("erl_call: failed to connect to node example_app@127.0.0.1\n")


def test_the_gate_kinds_as_parameters_and_in_words():
    from hotdeploy.agent import Health
    exact = Health(8080, "/api/public/version")
    assert exact.as_param() == {"port": 8080, "path": "/api/public/version", "status": 200,
                                "body": Bin("{version}"), "match": Atom("exact")}
    assert exact.describe() == "GET /api/public/version -> 200, body '{version}'"
    assert Health(80, "/health", body="build.version", match="json").describe() == \
        "GET /health -> 200, JSON field build.version = the version"
    none = Health(8080, None, body="")
    assert none.as_param()["path"] == Atom("none")
    assert none.describe().startswith("node only (no endpoint)")
