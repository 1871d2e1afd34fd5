"""An app made by `rebar3 new release` or `mix new --sup`, with only what
`python -m deployments.check` asks added, goes through release, provision
and a hot upgrade: no Dockerfile of its own (the default builder), no HTTP
endpoint (the node-only gate), no line copied from our examples."""
from __future__ import annotations

import shutil

import pytest

from tests.integration import fleet_checks as check
from tests.new_apps import NEW, follow_mix_advice, follow_relx_advice


def _v2(app, kind: str) -> None:
    """A code change a hot upgrade loads: a new function in the app's module."""
    if kind == "relx":
        src = app / "apps" / "relapp" / "src" / "relapp_app.erl"
        src.write_text(src.read_text().replace("-export([start/2, stop/1]).",
                                               "-export([start/2, stop/1, generation/0]).") +
                       "\ngeneration() -> 2.\n")
    else:
        src = app / "lib" / "mixapp.ex"
        src.write_text(src.read_text().replace("  def hello do", "  def generation, do: 2\n\n  def hello do"))


@pytest.mark.parametrize("kind, app_name", [("relx", "relapp"), ("mix", "mixapp")])
def test_a_generated_app_with_the_advice_followed_ships_hot(kind, app_name, make_store, make_env, tmp_path, capsys):
    from deployments.check import main as check_main
    from flows.deploy import hot_deploy
    from flows.provision import provision_host
    from flows.release import release
    app = shutil.copytree(NEW / ("relx_release" if kind == "relx" else "mix_new"), tmp_path / app_name)
    assert check_main([str(app)]) == 1
    (follow_relx_advice if kind == "relx" else follow_mix_advice)(app)
    assert check_main([str(app)]) == 0
    # --boot: built, installed in a container as on a host, and gated (node only: no endpoint)
    capsys.readouterr()
    assert check_main([str(app), "--boot", "--health-path", ""]) == 0, capsys.readouterr().out
    assert "✓ gate: node only" in capsys.readouterr().out

    block, client, bucket = make_store()
    v1 = release(app_dir=str(app), store_block=block)["version"]
    env = make_env(2, release_root=f"/srv/{app_name}", health_path="", health_body="",
                   runtime_config=f"[{{{app_name}, []}}].\n")
    provision_host(app=app_name, environment=env.name, version=v1, store_block=block)
    pids = [check.beam_pid(h) for h in env.fleet.hosts]

    _v2(app, kind)
    v2 = release(app_dir=str(app), store_block=block)["version"]
    rows = hot_deploy(app=app_name, environment=env.name, version=v2, store_block=block)
    assert [r["result"] for r in rows] == ["upgraded", "upgraded"], rows
    assert [check.beam_pid(h) for h in env.fleet.hosts] == pids, "the same OS processes: hot"
    for host in env.fleet.hosts:
        releases = (host.dir / "srv" / app_name / "releases" / "RELEASES").read_text()
        assert f'"{v2}"' in releases and "permanent" in releases


def test_check_boot_says_what_the_endpoint_answers_when_the_gate_would_refuse_it(capsys):
    """The example app boots, but the gate asked for another body: refused
    before any release, in the gate's own words, with what to change."""
    from deployments.check import main as check_main
    from tests.conftest import ROOT
    assert check_main([str(ROOT / "examples" / "example_app"), "--boot", "--health-body", "v{version}",
                       "--health-timeout", "3"]) == 1
    out = capsys.readouterr().out
    assert "✓ boot: first boot and daemon start as on a host" in out, out
    assert "✗ gate: GET /api/public/version -> 200, body 'v{version}' on port 8080: health gate" in out, out
    assert "answered 200" in out and "health_body" in out, out
