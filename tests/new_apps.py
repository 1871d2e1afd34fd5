"""Apps made by the tools' own generators, and what `deployments.check`
asks of them done as a user would (the unit test checks the advice; the
integration test ships the result).

tests/fixtures/new_apps holds their output, unchanged: `rebar3 new release
relapp` (rebar3 3.19) and `mix new mixapp --sup` (Elixir 1.14), both
Debian bookworm's."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEW = ROOT / "tests" / "fixtures" / "new_apps"


def follow_relx_advice(app: Path) -> None:
    """What the check asks of a relx default app, done as a user would."""
    config = app / "rebar.config"
    config.write_text(config.read_text().replace("{mode, dev},", "{mode, prod},"))
    (app / "config" / "vm.args").write_text("-name relapp@127.0.0.1\n-kernel inet_dist_use_interface {127,0,0,1}\n"
                                            "+K true\n")
    (app / "config" / "sys.config").write_text('[\n  {relapp, []},\n  "runtime.config"\n].\n')


def follow_mix_advice(app: Path) -> None:
    mix = app / "mix.exs"
    mix.write_text(mix.read_text()
                   .replace("deps: deps()", "deps: deps(),\n      releases: [mixapp: [include_executables_for: [:unix]]]")
                   .replace("extra_applications: [:logger]", "extra_applications: [:logger, :sasl]"))
    (app / "rel").mkdir()
    (app / "rel" / "vm.args.eex").write_text("-name mixapp@127.0.0.1\n-kernel inet_dist_use_interface {127,0,0,1}\n")
    (app / "rel" / "env.sh.eex").write_text("#!/bin/sh\nexport RELEASE_DISTRIBUTION=none\n")
