"""The local build workspace: a scratch copy of the app's source where the
builder container works, so the user's tree is never written to."""
from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from hotdeploy import layout
from hotdeploy.appcheck import WARNING, check_app, refusal
from hotdeploy.appcheck import errors as appcheck_errors
from hotdeploy.appup import AppupPlan
from hotdeploy.artifact import ArtifactError, ReleaseFacts, check_release, read_rel
from hotdeploy.distribution import RELX_DEFAULT, Distribution, read_vm_args, refuse_unsafe, vm_args_path
from hotdeploy.edges import DECLARATION
from hotdeploy.errors import Refusal
from hotdeploy.package import plan_upgrade_package
from hotdeploy.project import MIX, Project, ProjectError, mix_project, rebar3_project

from .store import sha256_file


class AppConfigError(Refusal, ValueError):
    pass


@dataclass(frozen=True)
class AppSource:
    path: Path
    project: Project   # rebar3 or mix, and the release it builds
    dockerfile: Path
    distribution: Distribution | None = None   # as the release's vm.args will say
    declared_restart: str | None = None        # the app's own word that this release must restart (why)
    has_tests: bool = True                     # false: a mix project with no test/ (mix test fails then)

    @property
    def release(self) -> str:   # also the store's folder for it
        return self.project.release


BUILDERS = Path(__file__).parent / "builders"     # the default builder Dockerfile of each project kind


def describe_app(app_dir: str | Path, dockerfile: str | None = None) -> AppSource:
    """Check APP_DIR has everything hotdeploy needs (hotdeploy/appcheck.py:
    every problem at once, with the lines to add, the words of
    `python -m deployments.check`); name its release."""
    path = Path(app_dir).expanduser().resolve()
    if not path.is_dir():
        raise AppConfigError(f"app directory {path} does not exist")
    from deployments.check import app_files
    findings = check_app(app_files(path))
    if appcheck_errors(findings):
        raise AppConfigError(refusal(findings, str(path)))
    log = _logger()
    for f in findings:
        if f.level == WARNING and log:
            log.warning("%s", f.line())
    rebar, mix = path / "rebar.config", path / "mix.exs"
    try:
        project = rebar3_project(rebar.read_text(), str(rebar)) if rebar.is_file() else \
            mix_project(mix.read_text(), str(mix))
    except ProjectError as e:
        raise AppConfigError(str(e)) from None
    docker = Path(dockerfile) if dockerfile else path / "Dockerfile"
    if not docker.is_file():
        if dockerfile:
            raise AppConfigError(f"no builder Dockerfile at {docker}")
        docker = BUILDERS / f"{project.kind}.Dockerfile"
    layout.check_app_name(project.release)
    _, text = _vm_args(path, project)
    dist = read_vm_args(text)    # a name and no cookie: checked above; loopback is the deploy's to check
    declaration = path / DECLARATION
    declared = (declaration.read_text().strip().splitlines() or ["(no reason given)"])[0][:200] \
        if declaration.is_file() else None
    has_tests = project.kind != MIX or (path / "test").is_dir()     # mix test fails without test/
    return AppSource(path, project, docker, dist, declared, has_tests)


def _logger():
    """The run's logger, or None outside a run (describe_app is called by
    flows, and by tests directly)."""
    try:
        return get_run_logger()
    except Exception:   # MissingContextError: not in a flow or task run
        return None


def _vm_args(path: Path, project: Project) -> tuple[str, str]:
    """(where, text) of the vm.args the release will have: the file the
    project names or relx/mix look for, else the build tool's default."""
    if project.kind == MIX:
        eex = path / "rel" / "vm.args.eex"
        if eex.is_file():
            return str(eex), eex.read_text()
        return f"{path} (no rel/vm.args.eex: mix's default vm.args)", ""
    named = vm_args_path((path / "rebar.config").read_text())
    for candidate in ([named] if named else ["config/vm.args.src", "config/vm.args"]):
        if (path / candidate).is_file():
            return str(path / candidate), (path / candidate).read_text()
    if named:
        raise AppConfigError(f"rebar.config names vm.args {named}, which does not exist in {path}")
    return (f"{path} (no config/vm.args: relx's default vm.args)", RELX_DEFAULT.format(rel=project.release))


@task(cache_policy=NO_CACHE)
def prepare_workspace(app: AppSource) -> Path:
    workspace = Path(tempfile.mkdtemp(prefix=f"hotdeploy-{app.release}-"))
    shutil.copytree(app.path, workspace, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("_build", ".git", "*.beam"))
    return workspace


@task(cache_policy=NO_CACHE)
def restore_previous(tarball: Path, expected_sha256: str, workspace: Path, project: Project,
                     previous: str) -> Path:
    """Check the previous release's tarball and unpack it where the relup is
    made (the project's rel dir, _build/default/rel/<release>/ for relx)."""
    release = project.release
    actual = sha256_file(tarball)
    if actual != expected_sha256:
        raise ArtifactError(
            f"previous release {previous} in the store is corrupt: its tarball has sha256 {actual}, "
            f"its checksum file says {expected_sha256}. Nothing was built; re-publish a good "
            f"{previous} under a new version or repair the object from a backup")
    target = workspace / project.rel_dir
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball) as tar:
            # The "tar" filter refuses absolute paths and links out of TARGET.
            if hasattr(tarfile, "tar_filter"):
                tar.extractall(target, filter="tar")
            else:  # Python without PEP 706 (early Debian 12 builds)
                tar.extractall(target)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArtifactError(f"previous release {previous} in the store cannot be unpacked: {e}") from None
    if not (target / "releases" / previous / f"{release}.rel").is_file():
        raise ArtifactError(f"previous tarball does not hold releases/{previous}/{release}.rel")
    get_run_logger().info("previous release %s restored into %s", previous, target)
    return target


@task(cache_policy=NO_CACHE)
def write_appups(workspace: Path, plan: AppupPlan, src_dirs: dict[str, str]) -> list[str]:
    """Put each generated appup in the app's ebin/, which rebar3 copies into
    the release (rebar3 3.19 cannot render .appup.src)."""
    log, written = get_run_logger(), []
    for appup in plan.appups:
        ebin = workspace / src_dirs.get(appup.app, ".") / "ebin"
        ebin.mkdir(parents=True, exist_ok=True)
        (ebin / f"{appup.app}.appup").write_text(appup.render())
        log.info("appup for %s %s -> %s:\n%s", appup.app, appup.up_from, appup.vsn, appup.render())
        written.append(appup.app)
    for app in plan.shipped:
        log.info("appup for %s: the project's own is kept", app)
    return written


@task(cache_policy=NO_CACHE)
def verify_artifact(tarball: Path, release: str, version: str, previous: list[str],
                    previous_erts: dict[str, str]) -> tuple[ReleaseFacts, str]:
    """The tarball is VERSION, its relup goes up from and down to exactly
    PREVIOUS, each on the same ERTS. Returns the facts and the tarball's sha256."""
    try:
        with tarfile.open(tarball) as tar:
            def text(name: str) -> str | None:
                try:
                    member = tar.extractfile(name)
                except KeyError:
                    return None
                return member.read().decode() if member else None
            rel_text = text(f"releases/{version}/{release}.rel")
            relup_text = text(f"releases/{version}/relup")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArtifactError(f"{tarball} is not a readable tarball: {e}") from None
    if rel_text is None:
        raise ArtifactError(f"{tarball.name} has no releases/{version}/{release}.rel")
    facts = check_release(release, version, rel_text, relup_text, previous, previous_erts)
    return facts, sha256_file(tarball)


def protocol_changes(workspace: Path, project: Project, version: str, previous: list[str]) -> dict[str, list[str]]:
    """Per predecessor, the consolidated Elixir protocols that changed: the
    node keeps releases/PREVIOUS/consolidated in its code path, so the new
    dispatch would never load hot (nothing would say so): those move by a
    restart."""
    rel_dir = workspace / project.rel_dir
    new = rel_dir / "releases" / version / "consolidated"
    if not new.is_dir():
        return {}
    found = {}
    for prev in previous:
        old = rel_dir / "releases" / prev / "consolidated"
        changed = sorted(b.stem for b in new.glob("*.beam")
                         if not (old / b.name).is_file() or (old / b.name).read_bytes() != b.read_bytes())
        if changed:
            found[prev] = [f"consolidated protocols changed ({', '.join(changed)}): the node would keep the old "
                           "dispatch"]
    return found


@dataclass
class UpgradePackage:
    path: Path
    sha256: str
    size: int
    upgrade_from: str
    libs: list[str]


@task(cache_policy=NO_CACHE)
def make_upgrade_package(tarball: Path, workspace: Path, project: Project, facts: ReleaseFacts,
                         previous: str) -> UpgradePackage:
    """From the full tarball, the package a host running PREVIOUS needs:
    releases/NEW, bin/<rel>-NEW and the lib/ dirs of the apps that changed
    (hotdeploy/package.py), checked against PREVIOUS's .rel."""
    release = project.release
    prev_rel = workspace / project.rel_dir / "releases" / previous / f"{release}.rel"
    _, prev_erts, prev_apps = read_rel(release, prev_rel.read_text())
    out = tarball.with_name(f"{release}-{facts.version}.upgrade.tar.gz")
    with tarfile.open(tarball) as full:
        members = {m.name: m for m in full.getmembers()}
        plan = plan_upgrade_package(list(members), release, facts.version, facts.apps, facts.erts,
                                    prev_apps, prev_erts)
        with tarfile.open(out, "w:gz") as package:
            for name in plan.members:
                member = members[name]
                package.addfile(member, full.extractfile(member) if member.isfile() else None)
    get_run_logger().info("upgrade package from %s: %d bytes (full tarball %d), lib/ of %s", previous,
                          out.stat().st_size, tarball.stat().st_size, ", ".join(plan.libs) or "nothing")
    return UpgradePackage(out, sha256_file(out), out.stat().st_size, previous, plan.libs)


@task(cache_policy=NO_CACHE)
def remove_workspace(workspace: Path) -> None:
    shutil.rmtree(workspace, ignore_errors=True)


def is_git_url(app_dir: str) -> bool:
    """A repository to clone (https://, ssh://, file://, git@host:path) rather
    than a checkout on this worker."""
    return bool(re.match(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", app_dir))


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def clone_app(url: str) -> Path:
    """A scratch clone of the app's repository (every branch and tag, no
    work tree: export_git_ref takes the ref from it). Retried: a network flake."""
    dest = Path(tempfile.mkdtemp(prefix="hotdeploy-clone-"))
    done = subprocess.run(["git", "clone", "--quiet", "--bare", "--", url, str(dest)], capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise AppConfigError(f"cannot clone {url}: {done.stderr.strip()[-300:]}")
    get_run_logger().info("cloned %s", url)
    return dest


@task(retries=1, cache_policy=NO_CACHE)
def export_git_ref(repo: str, ref: str) -> tuple[Path, str]:
    """The tree of REF in the git checkout REPO, exported to a scratch dir, and
    the commit it names (recorded in the manifest)."""
    if not re.fullmatch(r"[0-9A-Za-z._/-]{1,200}", ref) or ref.startswith("-"):
        raise AppConfigError(f"invalid git ref {ref!r}")
    def resolve() -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                              capture_output=True, text=True)
    found = resolve()
    if found.returncode != 0 and subprocess.run(["git", "-C", repo, "remote"], capture_output=True,
                                                text=True).stdout.strip():
        # CI pushed a commit this worker's checkout has not seen yet.
        subprocess.run(["git", "-C", repo, "fetch", "--quiet", "origin", ref], capture_output=True)
        subprocess.run(["git", "-C", repo, "fetch", "--quiet", "origin"], capture_output=True)
        found = resolve()
    if found.returncode != 0:
        raise AppConfigError(f"git ref {ref} not found in {repo} (nor on its remote)")
    commit = found.stdout.strip()
    dest = Path(tempfile.mkdtemp(prefix="hotdeploy-src-"))
    archive = subprocess.run(["git", "-C", repo, "archive", "--format=tar", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    get_run_logger().info("exported %s (%s) of %s", ref, commit[:12], repo)
    return dest, commit


def refuse_unsafe_distribution(tarball: Path, app: str, vsn: str, cluster: bool, environment: str) -> None:
    """Refuse a release whose vm.args (in its tarball) would expose the
    node's distribution beyond what ENVIRONMENT allows (hotdeploy/distribution.py)."""
    try:
        with tarfile.open(tarball) as tar:
            member = tar.extractfile(f"releases/{vsn}/vm.args")
            text = member.read().decode(errors="replace") if member else ""
    except KeyError:
        text = ""
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArtifactError(f"{tarball.name} is not a readable tarball: {e}") from None
    refuse_unsafe(read_vm_args(text), app, f"{app} {vsn} for {environment} (releases/{vsn}/vm.args)", cluster)
