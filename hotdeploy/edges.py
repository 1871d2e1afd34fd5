"""How each predecessor can move to a new release: hot (its relup, in the
running node) or restart (the node is stopped and started into the new
release), with the reasons, found by the build and never guessed (pure).

A predecessor needs a restart when:
- its ERTS differs (a hot upgrade cannot change the emulator);
- a NIF library of one of the app's own applications (priv/**/*.so) changed
  or went away, or a module that loads native code (-on_load) changed;
- a module changed its behaviour (gen_server -> gen_statem: its processes
  cannot change code in place), or a supervisor registers another name
  (its appup instructions could not address it);
- consolidated protocols changed (Elixir: the node keeps the old ones);
- the relup restarts the emulator (restart_new_emulator, restart_emulator);
- the app declares it: a file `.hotdeploy/restart` in the project, whose first
  line says why (for this release, from every predecessor).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .appup import AppBuild

HOT, RESTART = "hot", "restart"
DECLARATION = ".hotdeploy/restart"


@dataclass(frozen=True)
class Edge:
    from_vsn: str
    strategy: str                      # HOT | RESTART
    reasons: tuple[str, ...] = ()

    def as_manifest(self) -> dict:
        return {"strategy": self.strategy, "reasons": list(self.reasons)}


def module_reasons(prev: Iterable[AppBuild], new: Iterable[AppBuild]) -> list[str]:
    """What in the modules of the app's own applications rules a hot upgrade
    out, from PREV (one predecessor's apps) to NEW."""
    reasons = []
    old_apps = {a.name: a for a in prev}
    for app in new:
        before = old_apps.get(app.name)
        if before is None:
            continue
        old, cur = before.by_name(), app.by_name()
        for name in sorted(set(old) & set(cur)):
            a, b = old[name], cur[name]
            if a.md5 == b.md5:
                continue
            if a.on_load or b.on_load:
                reasons.append(f"module {name} loads native code (-on_load) and changed")
            if a.behaviours != b.behaviours and (a.behaviours or b.behaviours):
                reasons.append(f"module {name} changed its behaviour ({'/'.join(a.behaviours) or 'none'} -> "
                               f"{'/'.join(b.behaviours) or 'none'}): its processes cannot change code in place")
            sa, sb = a.supervision, b.supervision
            if sa and sb and sa.name and sb.name and sa.name != sb.name:
                reasons.append(f"supervisor {name} registers another name ({sa.name} -> {sb.name})")
    return reasons


def nif_reasons(prev: dict[str, str], new: dict[str, str]) -> list[str]:
    """NIF libraries (path -> md5) of the app's own applications that
    changed or went away; a new one loads with its new module, hot."""
    reasons = []
    for path in sorted(prev):
        if path not in new:
            reasons.append(f"NIF library {path} is gone")
        elif new[path] != prev[path]:
            reasons.append(f"NIF library {path} changed")
    return reasons


def relup_reasons(instructions: Iterable) -> list[str]:
    """A relup entry that restarts the emulator cannot be installed hot."""
    found = []
    for i in instructions:
        name = i if isinstance(i, str) else (i[0] if isinstance(i, tuple) and i else None)
        if str(name) in ("restart_new_emulator", "restart_emulator") and f"the relup says {name}" not in found:
            found.append(f"the relup says {name}")
    return found


def classify(predecessors: Iterable[str], reasons: dict[str, list[str]], declared: str | None = None) -> dict[str, Edge]:
    """Each predecessor's edge: restart when anything (or the app's own
    declaration) says so, else hot."""
    edges = {}
    for vsn in predecessors:
        why = list(dict.fromkeys(reasons.get(vsn, [])))
        if declared:
            why.append(f"the app declares a restart ({DECLARATION}: {declared})")
        edges[vsn] = Edge(vsn, RESTART if why else HOT, tuple(why))
    return edges


def edges_table(edges: dict[str, Edge]) -> list[str]:
    """One line per predecessor, for the release's log and summary."""
    return [f"{e.from_vsn}: {e.strategy}" + (f" ({'; '.join(e.reasons)})" if e.reasons else "")
            for e in sorted(edges.values(), key=lambda e: e.from_vsn)]


def read_edges(manifest: dict) -> dict[str, Edge]:
    """The manifest's `edges`; a manifest from before they were recorded: its
    up_from versions are hot edges."""
    raw = manifest.get("edges")
    if not isinstance(raw, dict):
        return {v: Edge(v, HOT) for v in manifest.get("up_from", [])}
    return {v: Edge(v, e.get("strategy", HOT), tuple(e.get("reasons", []))) for v, e in raw.items()
            if isinstance(e, dict)}


def restart_reasons(report, prev: str) -> list[str]:
    """What the builder's module report (hotdeploy/appup.ModuleReport) says
    against a hot upgrade from PREV: its ERTS, its modules, its NIFs."""
    reasons = []
    erts, new_erts = report.erts.get(f"prev:{prev}"), report.erts.get("new")
    if erts and new_erts and erts != new_erts:
        reasons.append(f"ERTS {erts} differs from the new release's {new_erts}: a hot upgrade cannot change the "
                       "emulator")
    reasons += module_reasons(report.previous.get(prev, []), report.apps.get("new", []))
    reasons += nif_reasons(report.nifs_of(f"prev:{prev}"), report.nifs_of("new"))
    return reasons


def with_restart(edges: dict[str, Edge], found: dict[str, list[str]]) -> dict[str, Edge]:
    """EDGES with the reasons FOUND after the build (protocols, the relup
    itself) added: those edges become restarts."""
    out = dict(edges)
    for vsn, why in found.items():
        if vsn in out and why:
            old = out[vsn]
            out[vsn] = Edge(vsn, RESTART, tuple(dict.fromkeys(old.reasons + tuple(why))))
    return out


def hot_versions(edges: dict[str, Edge]) -> list[str]:
    return [v for v, e in edges.items() if e.strategy == HOT]
