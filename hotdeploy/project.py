"""What kind of project an app is (rebar3/relx or Elixir's mix) and the
builder container's command for each build step, one small function each,
tested as text (pure). Everything after the build (store, hosts, relup on
the node) is the same for both: a mix release is given the layout
release_handler needs (a `.rel` beside `releases/`, RELEASES made on the
host) rather than the hosts learning a second layout."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

q = shlex.quote

REBAR3, MIX = "rebar3", "mix"
# Where the builder container has tasks/erlang (the helper escripts).
HELPERS = "/hotdeploy"


class ProjectError(ValueError):
    pass


@dataclass(frozen=True)
class Project:
    kind: str          # REBAR3 | MIX
    release: str       # the release's name, also the store's folder for it
    apps: tuple[str, ...] = ()   # mix: the project's own application

    @property
    def build_dir(self) -> str:
        return "_build/default" if self.kind == REBAR3 else "_build/prod"

    @property
    def rel_dir(self) -> str:
        """Where the release is assembled, and where previous releases are
        unpacked for the relup (relx's and mix's layout alike)."""
        return f"{self.build_dir}/rel/{self.release}"

    @property
    def test_command(self) -> str:
        return "rebar3 eunit" if self.kind == REBAR3 else "mix test"

    @property
    def start_command(self) -> str:
        """The start script's foreground command (systemd's ExecStart)."""
        return "foreground" if self.kind == REBAR3 else "start"


def rebar3_project(rebar_config: str, where: str) -> Project:
    rebar_config = without_comments(rebar_config, "%")
    names = re.findall(r"\{\s*release\s*,\s*\{\s*'?([a-z][A-Za-z0-9_]*)'?\s*,", rebar_config)
    if not names:
        raise ProjectError(
            f"{where} has no relx release ({{relx, [{{release, {{Name, Vsn}}, Apps}}, ...]}}): "
            "nothing to build a hot-upgradable release from")
    if len(set(names)) > 1:
        raise ProjectError(f"{where} defines releases {sorted(set(names))}; hotdeploy ships one per app")
    return Project(REBAR3, names[0])


_MIX_RELEASES_HINT = ("add `releases: [my_app: [include_executables_for: [:unix]]]` to project/0 in mix.exs "
                      "(see docs/your-app.md, Elixir apps)")


def _release_names(mix_exs: str) -> list[str]:
    """The keys of the `releases: [...]` keyword list (its top level only)."""
    m = re.search(r"\breleases:\s*\[", mix_exs)
    if not m:
        return []
    names, depth, i = [], 1, m.end()
    while i < len(mix_exs) and depth:
        c = mix_exs[i]
        if c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        elif depth == 1:
            key = re.match(r"([a-z][A-Za-z0-9_]*):\s", mix_exs[i:])
            if key and not re.match(r"[A-Za-z0-9_:]", mix_exs[i - 1]):
                names.append(key.group(1))
                i += key.end() - 1
        i += 1
    return names


def without_comments(source: str, mark: str = "#") -> str:
    """SOURCE without its line comments: Elixir's # (`mix new` writes example
    deps in comments), Erlang's % (`rebar3 new release` writes example
    options in comments). MARK outside a string ends the line's code."""
    out = []
    for line in source.splitlines():
        quoted = False
        for i, c in enumerate(line):
            if c == '"' and (i == 0 or line[i - 1] != "\\"):
                quoted = not quoted
            elif c == mark and not quoted:
                line = line[:i]
                break
        out.append(line)
    return "\n".join(out)


def mix_project(mix_exs: str, where: str) -> Project:
    """The release a mix.exs defines; refused with what to add when it
    defines none, several, or depends on packages (hex.pm is not reachable
    from the builder)."""
    mix_exs = without_comments(mix_exs)
    app = re.search(r"\bapp:\s*:([a-z][A-Za-z0-9_]*)", mix_exs)
    if not app:
        raise ProjectError(f"{where} names no app (`app: :my_app` in project/0)")
    if not re.search(r'^\s*version:\s*"[^"]*"', mix_exs, re.MULTILINE):
        raise ProjectError(f'{where} has no `version: "..."` line in project/0: hotdeploy writes the '
                           "release version there")
    names = _release_names(mix_exs)
    if not names:
        raise ProjectError(f"{where} defines no release: {_MIX_RELEASES_HINT}")
    if len(set(names)) > 1:
        raise ProjectError(f"{where} defines releases {sorted(set(names))}; hotdeploy ships one per app")
    deps = re.search(r"\bdeps:\s*\[(.*?)\]", mix_exs, re.DOTALL)
    body = deps.group(1) if deps else ""
    defp = re.search(r"defp?\s+deps\s*(?:\(\))?\s*,?\s*do:?\s*\[(.*?)\]\s*(?:end)?", mix_exs, re.DOTALL)
    listed = re.findall(r"\{\s*:([a-z][A-Za-z0-9_]*)", body + (defp.group(1) if defp else ""))
    if listed:
        raise ProjectError(f"{where} depends on {', '.join(sorted(set(listed)))}: dependencies cannot be "
                           "fetched in the builder (hex.pm is not reachable); vendor them as path "
                           "dependencies or drop them")
    return Project(MIX, names[0], (app.group(1),))


def set_version(project: Project, version: str, helpers: str = HELPERS) -> str:
    """Write VERSION into the project: rebar.config's release and every
    .app.src (an escript), or mix.exs's `version:` line."""
    if project.kind == REBAR3:
        return f"escript {q(helpers)}/set_version.escript {q(project.release)} {q(version)}"
    return (f"sed -i -E 's/^([[:space:]]*version:[[:space:]]*)\"[^\"]*\"/\\1\"{version}\"/' mix.exs && "
            f"grep -q '^[[:space:]]*version:[[:space:]]*\"{version}\"' mix.exs")


def _helper_env(project: Project) -> str:
    """Where the helper escripts find the build (relx's layout is their default)."""
    if project.kind == REBAR3:
        return ""
    return f"HOTDEPLOY_BUILD={q(project.build_dir)} HOTDEPLOY_APPS={q(','.join(project.apps))} "


def compile_and_inspect(project: Project, version: str, previous: list[str], out: str, helpers: str = HELPERS) -> str:
    compile_ = "rebar3 compile" if project.kind == REBAR3 else "MIX_ENV=prod mix compile"
    prev = "".join(f" {q(p)}" for p in previous)
    return (f"{set_version(project, version, helpers)}\n{compile_}\n"
            f"{_helper_env(project)}escript {q(helpers)}/modinfo.escript {q(project.release)}{prev} > {q(out)}")


def build_release(project: Project, version: str, previous: list[str], helpers: str = HELPERS) -> str:
    """Assemble the release, then a relup up from and down to every previous
    one (`rebar3 relup` and mix take one or none), then, for rebar3, its tarball
    (a mix release is packed by hotdeploy: mix's own tarball is refused by
    release_handler)."""
    rel, vsn = q(project.release), q(version)
    relup = (f"{_helper_env(project)}escript {q(helpers)}/relup.escript {rel} {vsn} "
             f"{' '.join(q(p) for p in previous)}\n" if previous else "")
    if project.kind == REBAR3:
        return f"rebar3 release -n {rel}\n{relup}rebar3 tar -n {rel} -v {vsn}"
    d = q(project.rel_dir)
    return (f"MIX_ENV=prod mix release {rel} --overwrite --quiet\n{relup}"
            # release_handler looks for releases/<rel>-<vsn>.rel beside the versions
            f"cp {d}/releases/{vsn}/{rel}.rel {d}/releases/{rel}-{vsn}.rel")


def release_outputs(project: Project, version: str) -> tuple[str, ...]:
    """What the build step's container hands back (workspace paths): relx's
    tarball, or the assembled mix release that hotdeploy packs."""
    if project.kind == REBAR3:
        return (f"{project.rel_dir}/{project.release}-{version}.tar.gz",)
    return (project.rel_dir,)


def vm_args_node_name(vm_args: str) -> str | None:
    """The node name a release's vm.args gives (`-name N` or `-sname N`), which
    hotdeploy reaches with erl_call; None when it gives none (a mix release
    left to its start script's own --sname)."""
    m = re.search(r"^-s?name[ \t]+(\S+)", vm_args, re.MULTILINE)
    return m.group(1) if m else None
