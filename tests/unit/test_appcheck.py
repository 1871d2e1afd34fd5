"""What hotdeploy needs from an app, said before any build (pure), on apps
made by the tools' own generators: `rebar3 new release relapp` and
`mix new mixapp --sup` (Debian bookworm's rebar3 3.19 and Elixir 1.14; the
files under tests/fixtures/new_apps are their output, unchanged)."""
from __future__ import annotations

import shutil

from deployments.check import app_files, main
from hotdeploy.appcheck import ERROR, OK, WARNING, check_app
from tests.new_apps import NEW, ROOT, follow_mix_advice, follow_relx_advice


def levels(findings) -> dict[str, str]:
    return {f.item: f.level for f in findings if f.level != "ok"}


def test_the_examples_are_ready(capsys):
    assert main([str(ROOT / "examples" / "example_app")]) == 0
    assert main([str(ROOT / "examples" / "elixir_app")]) == 0
    assert "0 to fix, 0 warning(s): ready for `release`" in capsys.readouterr().out


def test_a_relx_default_app_is_told_every_line_to_add(capsys, tmp_path):
    findings = check_app(app_files(NEW / "relx_release"))
    assert levels(findings) == {"standalone": ERROR, "distribution": ERROR, "sources": WARNING,
                                "runtime config": WARNING, "tests": WARNING}
    said = {f.item: f for f in findings}
    assert "{mode, dev}" in said["standalone"].text and "{mode, prod}" in said["standalone"].fix
    assert "it sets a cookie" in said["distribution"].text and "not bound to loopback" in said["distribution"].text
    assert said["distribution"].fix.startswith("in config/vm.args: -name relapp@127.0.0.1 / "
                                               "-kernel inet_dist_use_interface {127,0,0,1}")
    # the vm_args_src in rebar.config's comment is not the vm.args relx uses
    assert "vm.args.src" not in said["distribution"].text
    assert main([str(NEW / "relx_release")]) == 1
    assert "2 to fix, 3 warning(s)" in capsys.readouterr().out
    app = shutil.copytree(NEW / "relx_release", tmp_path / "relapp")
    follow_relx_advice(app)
    assert levels(check_app(app_files(app))) == {"tests": WARNING}   # {mode, prod} leaves the sources out
    assert main([str(app)]) == 0


def test_a_mix_new_app_is_told_every_line_to_add(tmp_path):
    findings = check_app(app_files(NEW / "mix_new"))
    assert levels(findings) == {"release": ERROR, "sasl": ERROR, "node name": ERROR}, findings
    said = {f.item: f for f in findings}
    assert said["release"].fix == "releases: [mixapp: [include_executables_for: [:unix]]] in project/0"
    assert said["sasl"].fix == "extra_applications: [:logger, :sasl] in application/0"
    assert "-name mixapp@127.0.0.1" in said["node name"].fix and "RELEASE_DISTRIBUTION=none" in said["node name"].fix
    app = shutil.copytree(NEW / "mix_new", tmp_path / "mixapp")
    follow_mix_advice(app)
    assert levels(check_app(app_files(app))) == {}
    assert main([str(app)]) == 0


def test_what_cannot_be_built_or_run_alone_is_an_error():
    assert levels(check_app({}))["build tool"] == ERROR
    no_sasl = check_app({"rebar.config": '{relx, [{release, {a, "1"}, [a]}, {mode, prod}]}.',
                         "config/vm.args": "-name a@127.0.0.1\n-kernel inet_dist_use_interface {127,0,0,1}\n",
                         "Dockerfile": "FROM x\nCOPY . /src\n"})
    said = {f.item: f for f in no_sasl if f.level == ERROR}
    assert set(said) == {"sasl", "builder"} and said["sasl"].fix == '{release, {a, "..."}, [a, sasl]}'
    erts = check_app({"mix.exs": 'def project do\n [app: :m,\n  version: "1.0.0",\n  releases: [m: [include_erts: '
                                 'false]]]\nend\ndef application do\n [extra_applications: [:sasl]]\nend\n'})
    assert levels(erts)["standalone"] == ERROR


def test_a_distribution_beyond_loopback_alone_is_for_the_environment_to_allow():
    """A cluster's nodes listen beyond loopback: release builds them, the
    deploy refuses them where the environment says loopback."""
    files = {"rebar.config": '{relx, [{release, {a, "1"}, [a, sasl]}, {mode, prod}]}.',
             "config/vm.args": "-name a@10.0.0.5\n"}
    said = {f.item: f for f in check_app(files)}
    assert said["distribution"].level == WARNING and "distribution = cluster" in said["distribution"].fix
    files["config/vm.args"] += "-setcookie a\n"
    assert {f.item: f for f in check_app(files)}["distribution"].level == ERROR


def _boot_steps(first='{ok, "{"result":"done"}"}', start="", gate='{ok, "{"result":"done"}"}'):
    return {"first_boot": first, "start": start, "gate": gate}


def test_boot_findings_pass_when_each_step_answers_done():
    from deployments.check import boot_findings
    from hotdeploy.agent import Health
    found = boot_findings(_boot_steps(), Health(8080, "/health", 200, "ok", "exact"))
    assert [(f.level, f.item) for f in found] == [(OK, "boot"), (OK, "gate")]
    assert "GET /health -> 200, body 'ok' on port 8080: passed" in found[1].text


def test_boot_findings_name_the_first_failing_step_in_its_words():
    from deployments.check import boot_findings
    from hotdeploy.agent import Health
    health = Health(8080, None, 200, "", "exact")
    failed = '{ok, "{"result":"failed","detail":"no error events: the tree is down"}"}'
    booted, f = boot_findings(_boot_steps(gate=failed), health)
    assert booted.level == OK and f.level == ERROR and f.item == "gate" and "node only" in f.text and "the tree is down" in f.text
    assert "health_path" in f.fix
    [f] = boot_findings(_boot_steps(start="the daemon did not start:\ncrash"), health)
    assert f.level == ERROR and f.item == "start" and "crash" in f.text
    [f] = boot_findings(_boot_steps(first="{badarg, x}"), health)
    assert f.level == ERROR and f.item == "first boot"
