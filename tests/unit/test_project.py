"""Project kinds and the builder's commands, as text (no container)."""
from pathlib import Path

import pytest

from hotdeploy.project import (MIX, REBAR3, Project, ProjectError, build_release, compile_and_inspect, mix_project,
                               release_outputs, vm_args_node_name)

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "elixir_app" / "mix.exs").read_text()


def test_the_elixir_example_is_a_mix_project_with_one_release():
    p = mix_project(EXAMPLE, "mix.exs")
    assert p == Project(MIX, "example_ex", ("example_ex",))
    assert p.rel_dir == "_build/prod/rel/example_ex" and p.test_command == "mix test" and p.start_command == "start"


@pytest.mark.parametrize("text, says", [
    (EXAMPLE.replace("releases: [", "other: ["), "defines no release"),
    (EXAMPLE.replace("deps: []", 'deps: [{:jason, "~> 1.4"}]'), "depends on jason: dependencies cannot be fetched"),
    (EXAMPLE.replace('version: "0.0.0"', "version: @version"), 'no `version: "..."` line'),
    (EXAMPLE.replace("example_ex: [include", 'a: [], example_ex: [include'), "defines releases ['a', 'example_ex']"),
])
def test_a_mix_project_hotdeploy_cannot_build_is_refused_with_what_to_change(text, says):
    with pytest.raises(ProjectError, match=None) as refused:
        mix_project(text, "mix.exs")
    assert says in str(refused.value)


def test_deps_in_a_deps_function_are_seen_too():
    text = EXAMPLE.replace("deps: []", "deps: deps()").replace(
        "  def application", '  defp deps do\n    [{:plug, "~> 1.0"}]\n  end\n\n  def application')
    with pytest.raises(ProjectError, match="depends on plug"):
        mix_project(text, "mix.exs")


def test_mix_commands_write_the_version_and_point_the_helpers_at_the_mix_build():
    p = Project(MIX, "shop", ("shop",))
    text = compile_and_inspect(p, "2026.1127.101500", ["2026.1126.090000"], ".out")
    assert "version:[[:space:]]*)\\\"[^\\\"]*\\\"/\\1\\\"2026.1127.101500\\\"/' mix.exs" in text.replace('"', '\\"')
    assert "MIX_ENV=prod mix compile" in text
    assert "HOTDEPLOY_BUILD=_build/prod HOTDEPLOY_APPS=shop escript /hotdeploy/modinfo.escript shop 2026.1126.090000" \
        in text
    build = build_release(p, "2026.1127.101500", ["2026.1126.090000"])
    assert build.splitlines()[0] == "MIX_ENV=prod mix release shop --overwrite --quiet"
    assert "escript /hotdeploy/relup.escript shop 2026.1127.101500 2026.1126.090000" in build
    assert ("cp _build/prod/rel/shop/releases/2026.1127.101500/shop.rel "
            "_build/prod/rel/shop/releases/shop-2026.1127.101500.rel") in build


def test_rebar3_commands_are_unchanged():
    p = Project(REBAR3, "shop")
    assert build_release(p, "1.2.3", []) == "rebar3 release -n shop\nrebar3 tar -n shop -v 1.2.3"
    assert compile_and_inspect(p, "1.2.3", [], ".out").startswith("escript /hotdeploy/set_version.escript shop 1.2.3\n"
                                                                  "rebar3 compile\nescript /hotdeploy/modinfo")


def test_the_build_hands_back_only_what_is_shipped():
    assert release_outputs(Project(REBAR3, "shop"), "1.2.3") == ("_build/default/rel/shop/shop-1.2.3.tar.gz",)
    assert release_outputs(Project(MIX, "shop", ("shop",)), "1.2.3") == ("_build/prod/rel/shop",)


def test_the_node_name_comes_from_vm_args_or_the_release_is_refused():
    example = (Path(__file__).resolve().parents[2] / "examples" / "elixir_app" / "rel" / "vm.args.eex").read_text()
    assert vm_args_node_name(example) == "example_ex@127.0.0.1"
    assert vm_args_node_name("-sname shop\n+K true\n") == "shop"
    # mix's default template: the start script passes --sname itself
    assert vm_args_node_name("## +K true\n## -name would go here\n+A 30\n") is None
