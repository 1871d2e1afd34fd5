"""Everything hotdeploy needs from an app, checked before any build (pure).

`check_app(files)` reads the app's small text files (path relative to the
app -> text) and says, item by item, what is there and what is missing,
with the lines to add. `python -m deployments.check APP_DIR` prints it;
`release` refuses with the same words when an item is an error.

What an app needs (docs/your-app.md says why):
- a rebar3 project with one relx release, or a mix project with one release;
- sasl in the release (release_handler does the hot upgrade);
- a standalone release: ERTS included, no links into the build tree (relx's
  `{mode, dev}` default links them; mix includes ERTS unless told not to);
- a node name in vm.args and no cookie there (hotdeploy/distribution.py);
- a version line the build can write (mix: a literal `version: "..."`);
- no dependency the builder cannot fetch (mix: hex.pm);
- a builder Dockerfile, or the default one for the project's kind.
Warned, not refused: a distribution beyond loopback (the environment's to
allow: distribution = cluster; the deploy refuses it elsewhere), no tests, sources shipped in the release, a sys.config
that does not name `runtime.config` (the environment's runtime_config would
not reach the node).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import distribution as dist_rules
from .erlterm import Atom, ErlangSyntaxError, consult
from .project import MIX, REBAR3, Project, ProjectError, mix_project, rebar3_project, without_comments

ERROR, WARNING, OK = "error", "warning", "ok"


@dataclass(frozen=True)
class Finding:
    level: str          # ERROR (the release is refused) | WARNING | OK
    item: str           # what is checked, a few words
    text: str           # what was found, in words
    fix: str = ""       # the lines to add or change (empty: nothing to do)

    def line(self) -> str:
        return f"{self.item}: {self.text}" + (f" -> {self.fix}" if self.fix else "")


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == ERROR]


def refusal(findings: list[Finding], where: str) -> str:
    """One message for every error (release's refusal; the check's words)."""
    bad = errors(findings)
    return (f"{where} is not ready for hotdeploy ({len(bad)} to fix; `python -m deployments.check {where}` "
            "lists them with the lines to add): " + "; ".join(f.line() for f in bad) + ". Nothing was built")


def check_app(files: dict[str, str]) -> list[Finding]:
    """FILES: the app's text files by relative path (rebar.config or mix.exs,
    config/, rel/, src/, apps/*/src, test/ names, Dockerfile)."""
    if "rebar.config" in files:
        return _rebar3(files)
    if "mix.exs" in files:
        return _mix(files)
    return [Finding(ERROR, "build tool", "neither rebar.config nor mix.exs",
                    "hotdeploy builds rebar3 (relx) and Elixir (mix) releases: run it on the project's root")]


def _common(files: dict[str, str], project: Project) -> list[Finding]:
    found = []
    if "Dockerfile" in files:
        text = files["Dockerfile"]
        if re.search(r"^\s*(COPY|ADD)\b", text, re.MULTILINE | re.IGNORECASE):
            found.append(Finding(ERROR, "builder", "the Dockerfile copies files in (COPY/ADD)",
                                 "remove them: the builder image is built from the Dockerfile alone; the "
                                 "source is mounted at each build"))
        else:
            found.append(Finding(OK, "builder", "the app's Dockerfile"))
    else:
        found.append(Finding(OK, "builder", f"no Dockerfile: hotdeploy's default {project.kind} builder "
                                            "(Debian 12, Debian's Erlang" + (", Elixir" if project.kind == MIX
                                                                            else ", rebar3") + ")"))
    tests = [p for p in files if p.startswith("test/") or re.match(r"apps/[^/]+/test/", p)]
    if project.kind == REBAR3:   # eunit also runs the tests inside modules
        tests += [p for p, t in files.items() if p.endswith(".erl") and "-ifdef(TEST)" in t]
    if tests:
        found.append(Finding(OK, "tests", f"{project.test_command} ({len(tests)} file(s) with tests)"))
    else:
        found.append(Finding(WARNING, "tests", f"no tests (no test/ directory): `{project.test_command}` has "
                                               "nothing to run; the release goes out untested",
                             "add tests under test/"))
    found.append(Finding(OK, "endpoint", "the gate GETs 127.0.0.1:<app_port><health_path> from inside the node "
                                         "and expects the version (environment block: health_path, health_match "
                                         "exact|json|regex, health_body); an app without HTTP sets health_path "
                                         "empty (the node-only gate)"))
    return found


def _relx_options(config: list) -> list | None:
    """The top-level relx options of rebar.config's terms; profiles do not
    count: the build runs the default profile."""
    for term in config:
        if isinstance(term, tuple) and len(term) == 2 and term[0] == "relx" and isinstance(term[1], list):
            return term[1]
    return None


def _option(options: list, key: str):
    """The value of {KEY, Value} in OPTIONS (true/false as Python's)."""
    for o in options:
        if isinstance(o, tuple) and len(o) == 2 and o[0] == key:
            return {"true": True, "false": False}.get(o[1], o[1]) if isinstance(o[1], Atom) else o[1]
    return None


def _rebar3(files: dict[str, str]) -> list[Finding]:
    text = files["rebar.config"]
    try:
        project = rebar3_project(text, "rebar.config")
    except ProjectError as e:
        return [Finding(ERROR, "release", str(e), "add {relx, [{release, {my_app, \"0.1.0\"}, [my_app, sasl]}, "
                                                   "{mode, prod}]}. to rebar.config")]
    rel = project.release
    found = [Finding(OK, "release", f"relx release {rel} (rebar3)")]
    try:
        relx = _relx_options(consult(text))
    except ErlangSyntaxError:
        relx = None
    options = relx or []
    release = next((o for o in options if isinstance(o, tuple) and len(o) >= 3 and o[0] == "release"), None)
    apps = [a if isinstance(a, str) else a[0] for a in (release[2] if release else [])
            if isinstance(a, str) or (isinstance(a, tuple) and a)]
    if relx is None:
        found.append(Finding(WARNING, "release", "rebar.config could not be read as terms (macros, funs?): "
                                                 "sasl, mode and ERTS were not checked"))
    else:
        if "sasl" not in apps:
            found.append(Finding(ERROR, "sasl", f"the release's applications ({', '.join(apps)}) leave out sasl: "
                                                "release_handler, which does the hot upgrade, is in it",
                                 f"{{release, {{{rel}, \"...\"}}, [{', '.join(apps + ['sasl'])}]}}"))
        else:
            found.append(Finding(OK, "sasl", "in the release"))
        found.append(_standalone(options))
        mode = _option(options, "mode")
        if _option(options, "include_src") is not False and mode not in ("prod", "minimal"):
            found.append(Finding(WARNING, "sources", "the release ships every source file (relx's include_src "
                                                     "default): larger packages, and a 'source not found' "
                                                     "warning per module at each build",
                                 "{include_src, false} in rebar.config's relx"))
    found += _vm_args_findings(files, rel, dist_rules.vm_args_path(text), REBAR3)
    sys_config = _option(options, "sys_config") or ("config/sys.config" if "config/sys.config" in files else None)
    sys_config = sys_config.removeprefix("./") if isinstance(sys_config, str) else None
    if sys_config and sys_config in files and re.search(r'"runtime\.config"\s*\]\s*\.\s*$', files[sys_config]):
        found.append(Finding(OK, "runtime config", f"{sys_config} names \"runtime.config\" last"))
    else:
        found.append(Finding(WARNING, "runtime config",
                             f"{sys_config or 'no sys.config'} does not name \"runtime.config\": the environment's "
                             "runtime_config would not reach the node (sys.config.src and OS variables are not "
                             "re-read at a hot upgrade)",
                             f"end {sys_config or 'config/sys.config'} with the string \"runtime.config\" as its "
                             "last entry ([{my_app, [...]}, \"runtime.config\"].)" +
                             ("" if sys_config else " and name it: {sys_config, \"config/sys.config\"}")))
    deps = re.search(r"\{\s*deps\s*,\s*\[(.*?)\]\s*\}", text, re.DOTALL)
    if deps and re.search(r"[a-z]", re.sub(r"%[^\n]*", "", deps.group(1))):
        found.append(Finding(WARNING, "dependencies", "rebar.config has dependencies: the builder fetches them "
                                                      "(hex.pm or git must be reachable from it)"))
    return found + _common(files, project)


def _standalone(options: list) -> Finding:
    mode, dev, erts = _option(options, "mode"), _option(options, "dev_mode"), _option(options, "include_erts")
    if mode in ("prod", "minimal") and erts is not False and dev is not True:
        return Finding(OK, "standalone", f"{{mode, {mode}}}: ERTS included, no links to the build")
    if dev is False and erts is True:
        return Finding(OK, "standalone", "{dev_mode, false}, {include_erts, true}")
    said = ", ".join(f"{{{k}, {v}}}" for k, v in (("mode", mode), ("dev_mode", dev), ("include_erts", erts))
                     if v is not None) or "relx's defaults"
    return Finding(ERROR, "standalone", f"{said}: the release links into the build tree or leaves ERTS out; a "
                                        "host must run it alone (hotdeploy builds rebar.config's default "
                                        "profile, not prod)",
                   "{mode, prod} in the top-level relx list of rebar.config (not only in a profile), or "
                   "{dev_mode, false}, {include_erts, true}")


def _vm_args_findings(files: dict[str, str], rel: str, named: str | None, kind: str) -> list[Finding]:
    lines = [line.format(rel=rel) for line in dist_rules.LOOPBACK_LINES]
    if kind == MIX:
        where = "rel/vm.args.eex"
        text = files.get(where)
        fix_file = f"create {where} with: " + " / ".join(lines)
    else:
        named = named.removeprefix("./") if named else None
        where = named or next((p for p in ("config/vm.args.src", "config/vm.args") if p in files), None)
        text = files.get(where) if where else None
        if where and text is None:
            return [Finding(ERROR, "node name", f"rebar.config names vm.args {where}, which does not exist",
                            f"create {where} with: " + " / ".join(lines))]
        if text is None:
            where, text = "relx's default vm.args", dist_rules.RELX_DEFAULT.format(rel=rel)
        fix_file = (f"in {where}: " if where.startswith("config/") or named else
                    "create config/vm.args (and {vm_args, \"config/vm.args\"} in relx) with: ") + " / ".join(lines)
    if text is None:
        return [Finding(ERROR, "node name", f"no {where}: mix's default names no node hotdeploy can reach",
                        fix_file + "; and rel/env.sh.eex with: export RELEASE_DISTRIBUTION=none")]
    found = []
    d = dist_rules.read_vm_args(text)
    problems = dist_rules.problems(d, rel)
    if problems:
        # As release always did: a name and no cookie are required; a
        # distribution beyond loopback alone is the environment's to allow
        # (distribution = cluster), so it is said, and the deploy refuses it.
        level = ERROR if dist_rules.problems(d, rel, cluster=True) else WARNING
        found.append(Finding(level, "distribution", f"{where}: " + "; ".join(problems), fix_file +
                             " (and no -setcookie)" + ("" if level == ERROR else "; fine for an environment whose "
                                                       "nodes form a cluster (distribution = cluster)")))
    else:
        found.append(Finding(OK, "node name", f"{d.node}, distribution on loopback, no cookie in {where}"))
    if kind == MIX:
        env = files.get("rel/env.sh.eex", "")
        if not re.search(r"^\s*export\s+RELEASE_DISTRIBUTION=none\b", env, re.MULTILINE):
            found.append(Finding(ERROR, "node name", "rel/env.sh.eex does not export RELEASE_DISTRIBUTION=none: "
                                                     "mix's start script would add its own --sname",
                                 "export RELEASE_DISTRIBUTION=none in rel/env.sh.eex"))
    return found


def _mix(files: dict[str, str]) -> list[Finding]:
    text = files["mix.exs"]
    try:
        project = mix_project(text, "mix.exs")
    except ProjectError as e:
        app = re.search(r"\bapp:\s*:([a-z][A-Za-z0-9_]*)", text)
        name = app.group(1) if app else "my_app"
        fix = {"no release": f"releases: [{name}: [include_executables_for: [:unix]]] in project/0",
               "version": 'version: "0.1.0" in project/0'}
        key = "no release" if "defines no release" in str(e) else "version" if "version" in str(e) else ""
        first = Finding(ERROR, "release", str(e), fix.get(key, ""))
        # What else is missing, as if the release were there: one pass lists it all.
        patched = text if key != "no release" else re.sub(r"(\bdef\s+project\s+do\s*\[)",
                                                          rf"\1 releases: [{name}: []],", text, count=1)
        try:
            project = mix_project(patched, "mix.exs")
        except ProjectError:
            return [first] + _common(files, Project(MIX, name, (name,)))
        rest = _mix_rest(files, text, project)
        return [first] + rest
    return [Finding(OK, "release", f"mix release {project.release}")] + _mix_rest(files, text, project)


def _mix_rest(files: dict[str, str], text: str, project: Project) -> list[Finding]:
    found = []
    code = without_comments(text)
    extra = re.search(r"\bextra_applications:\s*\[([^\]]*)\]", code)
    if extra and re.search(r":sasl\b", extra.group(1)):
        found.append(Finding(OK, "sasl", "in extra_applications"))
    else:
        have = extra.group(1).strip() if extra else ""
        found.append(Finding(ERROR, "sasl", "sasl is not in extra_applications: release_handler, which does the "
                                            "hot upgrade, is in it",
                             f"extra_applications: [{', '.join(x for x in (have, ':sasl') if x)}] in "
                             "application/0"))
    if re.search(r"\binclude_erts:\s*false\b", code):
        found.append(Finding(ERROR, "standalone", "include_erts: false: a host must run the release alone",
                             "remove include_erts: false from the release"))
    else:
        found.append(Finding(OK, "standalone", "ERTS included (mix's default)"))
    found += _vm_args_findings(files, project.release, None, MIX)
    return found + _common(files, project)
