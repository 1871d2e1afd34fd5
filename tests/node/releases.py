"""Real releases of the example app, built here with the machine's rebar3 by
the same build commands and appup planner the builder container runs
(hotdeploy/project.py, hotdeploy/appup.py, tasks/erlang/*.escript), so the
node program is tested against what a deploy ships, in seconds, with no
container, store or Prefect.

Builds are cached by their inputs under HOTDEPLOY_NODE_CACHE (default
/var/tmp/hotdeploy-node-releases): a second run builds nothing.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hotdeploy.agent import Atom, Bin
from hotdeploy.appup import declared_children, parse_modinfo, plan_appups
from hotdeploy.artifact import read_rel
from hotdeploy.package import plan_upgrade_package
from hotdeploy.project import Project, build_release, compile_and_inspect

ROOT = Path(__file__).resolve().parents[2]
HELPERS = ROOT / "tasks" / "erlang"
APP = "example_app"
PROJECT = Project("rebar3", APP)
CACHE = Path(os.environ.get("HOTDEPLOY_NODE_CACHE", "/var/tmp/hotdeploy-node-releases"))


@dataclass(frozen=True)
class Built:
    name: str          # the example version it is built from (v1, v2, new-worker, ...)
    vsn: str           # its release version
    tarball: Path      # the full tarball, as `release` publishes it
    key: str           # cache key (its inputs, predecessors included)

    @property
    def declared(self) -> list[dict]:
        """The manifest's `supervisors`: what each supervisor declares."""
        return json.loads(self.tarball.with_name("supervisors.json").read_text())

    def expected_children(self) -> list[dict]:
        """As tasks/hosts.upgrade_host passes them to the node."""
        return [{"sup": Atom(s["sup"]), "ids": [Bin(i) for i in s["ids"]]} for s in self.declared]


def _inputs_digest(source: str, vsn: str, predecessors: list[Built], extra: dict[str, str]) -> str:
    h = hashlib.sha256(f"{source}\0{vsn}\0".encode())
    for p in predecessors:
        h.update(p.key.encode())
    for path in sorted(_source_files(source)) + sorted(HELPERS.glob("*.escript")) + [
            ROOT / "hotdeploy" / "appup.py", ROOT / "hotdeploy" / "project.py"]:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for name, text in sorted(extra.items()):
        h.update(name.encode() + b"\0" + text.encode())
    return h.hexdigest()[:20]


def _source_files(source: str) -> list[Path]:
    files = [p for p in (ROOT / "examples" / APP).rglob("*") if p.is_file()]
    chain, version = [], source
    while version != "v1":
        overlay = ROOT / "examples" / "versions" / version
        chain.append(overlay)
        base = overlay / ".base"
        version = base.read_text().strip() if base.is_file() else ("v1" if version == "v2" else "v2")
    return files + [p for d in chain for p in d.rglob("*") if p.is_file()]


def _sh(command: str, cwd: Path, home: Path) -> None:
    done = subprocess.run(["sh", "-ec", command], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "HOME": str(home), "REBAR_COLOR": "none"}, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"build step failed ({done.returncode}):\n{command}\n{done.stdout[-3000:]}{done.stderr[-2000:]}")


def build(source: str, vsn: str, predecessors: list[Built] = (), extra: dict[str, str] | None = None) -> Built:
    """The example app as of SOURCE (examples/checkout-version), plus EXTRA
    files (path -> text), released as VSN with a relup up from and down to
    every PREDECESSOR: what `release` builds, minus the container."""
    extra = extra or {}
    predecessors = list(predecessors)
    key = _inputs_digest(source, vsn, predecessors, extra)
    cached = CACHE / key / f"{APP}-{vsn}.tar.gz"
    cached.parent.mkdir(parents=True, exist_ok=True)
    with open(cached.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)    # test processes side by side build each release once
        if not cached.is_file():
            _build_into(cached, source, vsn, predecessors, extra)
    return Built(source, vsn, cached, key)


def _build_into(cached: Path, source: str, vsn: str, predecessors: list[Built], extra: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="hotdeploy-node-build-") as tmp:
        ws, home = Path(tmp) / "app", Path(tmp) / "home"
        home.mkdir()
        subprocess.run([str(ROOT / "examples" / "checkout-version"), source, str(ws)], check=True)
        for name, text in extra.items():
            (ws / name).parent.mkdir(parents=True, exist_ok=True)
            (ws / name).write_text(text)
        rel_dir = ws / PROJECT.rel_dir
        rel_dir.mkdir(parents=True)
        for p in predecessors:
            with tarfile.open(p.tarball) as tar:
                tar.extractall(rel_dir, filter="tar")
        prev = [p.vsn for p in predecessors]
        _sh(compile_and_inspect(PROJECT, vsn, prev, ".modinfo.tsv", str(HELPERS)), ws, home)
        report = parse_modinfo((ws / ".modinfo.tsv").read_text())
        plan = plan_appups({p: report.previous.get(p, []) for p in prev}, report.apps.get("new", []), report.shipped)
        for appup in plan.appups:   # as tasks/workspace.write_appups puts them
            ebin = ws / report.src_dirs.get(appup.app, ".") / "ebin"
            ebin.mkdir(parents=True, exist_ok=True)
            (ebin / f"{appup.app}.appup").write_text(appup.render())
        _sh(build_release(PROJECT, vsn, prev, str(HELPERS)), ws, home)
        cached.with_name("supervisors.json").write_text(json.dumps(declared_children(report.apps.get("new", []))))
        cached.with_name("appups.txt").write_text("".join(a.render() for a in plan.appups))
        part = cached.with_suffix(".part")
        shutil.copyfile(rel_dir / f"{APP}-{vsn}.tar.gz", part)
        part.rename(cached)


def upgrade_package(target: Built, base: Built) -> Path:
    """What `release` publishes beside TARGET's tarball for hosts on BASE
    (hotdeploy/package.py): releases/NEW, bin/<rel>-NEW, changed lib/ dirs."""
    out = target.tarball.with_name(f"{APP}-{target.vsn}.from-{base.vsn}.upgrade.tar.gz")
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_file():
            _package_into(out, target, base)
    return out


def _package_into(out: Path, target: Built, base: Built) -> None:
    def rel_of(tar: tarfile.TarFile, vsn: str):
        return read_rel(APP, tar.extractfile(f"releases/{vsn}/{APP}.rel").read().decode())
    with tarfile.open(base.tarball) as prev:
        _, prev_erts, prev_apps = rel_of(prev, base.vsn)
    with tarfile.open(target.tarball) as full:
        members = {m.name: m for m in full.getmembers()}
        _, erts, apps = rel_of(full, target.vsn)
        plan = plan_upgrade_package(list(members), APP, target.vsn, apps, erts, prev_apps, prev_erts)
        part = out.with_suffix(".part")
        with tarfile.open(part, "w:gz") as package:
            for name in plan.members:
                package.addfile(members[name], full.extractfile(members[name]) if members[name].isfile() else None)
    part.rename(out)
