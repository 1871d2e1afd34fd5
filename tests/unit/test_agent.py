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
    with pytest.raises(ValueError):
        agent.term(Atom("rm -rf"))


def test_program_binds_p_first():
    assert agent.program({"op": Atom("inspect")}, source="ok.").startswith("P = #{op => inspect},\nok.")


def test_answer_parsing():
    assert agent.parse_answer('{ok, "{"result":"done","steps":{"gate":1.0}}"}\n') == \
        {"result": "done", "steps": {"gate": 1.0}}
    with pytest.raises(agent.ProgramFailed):
        agent.parse_answer('{error, "*** eval: {\'EXIT\', boom}"}')
    with pytest.raises(agent.NodeUnreachable):
        agent.parse_answer("erl_call: failed to connect to node example_app@127.0.0.1\n")


def test_the_node_program_lints_clean_in_erlang():
    """erl_lint finds an unbound variable or a bad pattern before a host
    does (the program is evaluated by erl_eval, which only fails there)."""
    import shutil
    import subprocess
    if not shutil.which("erl"):
        pytest.skip("no erl on this machine")
    text = agent.program({"op": agent.Atom("inspect"), "root": "/tmp", "rel": "x", "app": agent.Atom("x")})
    check = ('{ok, T, _} = erl_scan:string(io:get_chars("", 10000000)), {ok, E} = erl_parse:parse_exprs(T), '
             'io:format("~p", [erl_lint:exprs(E, [])]), halt().')
    out = subprocess.run(["erl", "-noshell", "-eval", check], input=text, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "{ok,[]}", out.stdout + out.stderr
