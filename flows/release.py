"""release: test in a container, build with a relup from every version the
fleet runs, verify, publish. The CI half of the seed's pipeline (steps 1-6)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import DEFAULT_STORE_BLOCK, load_docker_host, load_package_store
from hotdeploy import layout, params
from hotdeploy.appup import declared_children, parse_modinfo, plan_appups
from hotdeploy.edges import classify, edges_table, hot_versions, restart_reasons, with_restart
from hotdeploy.errors import KnownFailure
from hotdeploy.fleetstate import choose_predecessors, versions_in_use
from hotdeploy.layout import parse_checksum
from hotdeploy.manifest import build_manifest, manifest_bytes
from hotdeploy.report import StepClock, artifact_key, release_summary_markdown
from hotdeploy.versions import next_version
from tasks.container import build_release, ensure_builder_image, inspect_modules, test_in_container
from tasks.store import (download, list_store, move_pointer, put_new, put_text, read_environment_records,
                         read_manifest, read_pointer, read_text)
from tasks.workspace import (describe_app, make_upgrade_package, prepare_workspace, protocol_changes,
                             remove_workspace, restore_previous, verify_artifact, write_appups)
from .outcome import explained


class NoUpgradePath(KnownFailure, ValueError):
    pass


@flow(name="release", task_runner=ThreadPoolTaskRunner(max_workers=4))
@explained
def release(
    app_dir: str,
    store_block: str = DEFAULT_STORE_BLOCK,
    version: str | None = None,
    test_command: str | None = None,
    git_commit: str | None = None,
    docker_host_block: str | None = None,
    upgrade_from: list[str] | None = None,
    upgrade_from_max: int = 5,
    rebuild: bool = False,
) -> dict:
    """Test, build with a relup from every version the fleet runs, verify, publish.

    The relup goes up from (and down to) the versions recorded as running or
    permanent in any environment, the store's VERSION pointer, and
    upgrade_from. A git_commit released already is not rebuilt (its release
    is returned) unless rebuild.

    Args:
        app_dir: the app's source tree on the worker (rebar3 project with a relx release, or mix project with a release)
        store_block: the S3Bucket block of the package store
        version: the version to publish; empty: the build timestamp (YEAR.MMDD.hhmmss)
        test_command: run in the builder container before anything is built; empty: `rebar3 eunit` or `mix test`
        git_commit: the commit the source is (recorded in the manifest; one release per commit)
        docker_host_block: a DockerHost block for the container engine; empty: the local engine
        upgrade_from: versions the relup must also go up from, whatever runs
        upgrade_from_max: of the versions chosen automatically, the newest this many
        rebuild: build again even if git_commit was released already
    """
    params.block_name("store_block", store_block)
    if version is not None:
        params.version(version, allow_latest=False)
    if docker_host_block is not None:
        params.block_name("docker_host_block", docker_host_block)
    requested = [params.version(v, allow_latest=False) for v in (upgrade_from or [])]
    if git_commit is not None:
        params.git_commit(git_commit)
    params.count("upgrade_from_max", upgrade_from_max)
    log = get_run_logger()
    clock = StepClock()
    app = describe_app(app_dir)
    store = load_package_store(store_block)
    engine = load_docker_host(docker_host_block)
    name = app.release

    with clock.step("store"):
        # Read first, so garbage in the store stops the run before any build,
        # and the pointer's ETag is the one the publish compares against.
        listing = list_store(store, name)
        pointer = read_pointer(store, name)
        if git_commit and not rebuild:
            done = _released_already(store, name, git_commit, listing.published)
            if done:
                log.info("commit %s is released already as %s %s: not rebuilt (rebuild=True builds it again)",
                         git_commit, name, done["version"])
                return _summarize({"release": name, "version": done["version"], "previous": done.get("previous"),
                                   "upgrade_from": done.get("up_from", []), "left_out": done.get("left_out", {}),
                                   "sha256": done["sha256"], "git_commit": git_commit,
                                   "builder_image": done.get("builder_image"), "builder_image_built": False,
                                   "appup": done.get("appup", []), "timings": clock.seconds,
                                   "pointer": pointer.version, "reused": True})
        vsn = str(next_version(datetime.now(timezone.utc), listing.taken, version))
        in_use = versions_in_use(read_environment_records(store, name).values())
        chosen, left_out = choose_predecessors(in_use, pointer.version, requested, listing.published, vsn,
                                               upgrade_from_max)
        refused = {v: why for v, why in left_out.items() if v in requested}
        if refused:
            raise NoUpgradePath("upgrade_from: " + "; ".join(f"{v}: {why}" for v, why in refused.items()) +
                                ". Nothing was built")
        manifests = {p: read_manifest(store, name, p) for p in chosen}
        if listing.incomplete:
            log.warning("ignoring interrupted publishes of %s: %s", name, ", ".join(listing.incomplete))
        for v, why in left_out.items():
            log.warning("no relup from %s: %s", v, why)
        log.info("building %s %s, upgrading from %s (running in the fleet: %s)", name, vsn,
                 ", ".join(chosen) or "nothing (first release)", ", ".join(in_use) or "nothing recorded")

    with clock.step("builder image"):
        image = ensure_builder_image(app.dockerfile, engine)
    workspace = prepare_workspace(app)
    try:
        with clock.step("test"):
            if test_command or app.has_tests:
                test_in_container(engine, image, workspace, test_command or app.project.test_command)
            else:
                log.warning("%s has no test/ directory: released untested (add tests, or pass test_command)",
                            app.release)

        with clock.step("fetch previous"):
            for prev in chosen:
                checksum = parse_checksum(read_text(store, layout.checksum_key(name, prev)) or "")
                tarball = download(store, layout.tarball_key(name, prev), workspace / f".hotdeploy-{prev}.tar.gz")
                restore_previous(tarball, checksum, workspace, app.project, prev)
                tarball.unlink()

        with clock.step("build with relup"):
            report = parse_modinfo(inspect_modules(engine, image, workspace, app.project, vsn, chosen))
            # How each predecessor can move: hot through the relup, or by a
            # restart (a new ERTS, a changed NIF, ...); the relup only from the hot.
            edges = classify(chosen, {p: restart_reasons(report, p) for p in chosen}, app.declared_restart)
            hot = hot_versions(edges)
            plan = plan_appups({p: report.previous.get(p, []) for p in hot}, report.apps.get("new", []),
                               report.shipped)
            for note in sorted({n for a in plan.appups for e in a.entries for n in e.notes}):
                log.warning("appup: %s", note)
            write_appups(workspace, plan, report.src_dirs)
            tarball = build_release(engine, image, workspace, app.project, vsn, hot)

        with clock.step("verify"):
            facts, sha256 = verify_artifact(tarball, name, vsn, hot,
                                            {p: report.erts.get(f"prev:{p}") or manifests[p].get("erts")
                                             for p in hot})
            edges = with_restart(edges, {**protocol_changes(workspace, app.project, vsn, hot),
                                         **facts.relup_restarts})
            for line in edges_table(edges):
                log.info("from %s", line)
            hot = hot_versions(edges)
            # The upgrade package is made for the hosts most likely next: those
            # on the pointer's version (else the newest hot predecessor).
            previous = pointer.version if pointer.version in hot else (hot[-1] if hot else None)
            package = make_upgrade_package(tarball, workspace, app.project, facts, previous) if previous else None

        with clock.step("publish"):
            manifest = build_manifest(
                release=name, kind=app.project.kind, facts=facts, previous=previous, sha256=sha256,
                size=tarball.stat().st_size, built_at=datetime.now(timezone.utc),
                otp_release=report.otp_release, git_commit=git_commit,
                appup=sorted({i for a in plan.appups for i in a.up}), builder_image=image.tag,
                appups={a.app: a.render() for a in plan.appups},
                upgrade_package=package and {"from": package.upgrade_from, "sha256": package.sha256,
                                             "size": package.size, "libs": package.libs},
                left_out=left_out, supervisors=declared_children(report.apps.get("new", [])), edges=edges)
            put_new(store, layout.tarball_key(name, vsn), tarball, "application/gzip")
            if package:
                put_new(store, layout.upgrade_package_key(name, vsn), package.path, "application/gzip")
            put_new(store, layout.checksum_key(name, vsn),
                    layout.checksum_line(sha256, vsn).encode(), "text/plain")
            put_new(store, layout.manifest_key(name, vsn), manifest_bytes(manifest), "application/json")
            if git_commit:
                put_text(store, layout.commit_key(name, git_commit), json.dumps({"version": vsn}) + "\n")
            pointer_now = move_pointer(store, name, vsn, pointer)  # last: only complete versions are named
    finally:
        remove_workspace(workspace)

    summary = {"release": name, "version": vsn, "previous": previous, "upgrade_from": hot,
               "edges": {v: e.as_manifest() for v, e in edges.items()},
               "left_out": left_out, "sha256": sha256, "git_commit": git_commit,
               "builder_image": image.tag, "builder_image_built": image.built,
               "appup": manifest["appup"], "timings": clock.seconds, "pointer": pointer_now, "reused": False}
    log.info("released %s %s: %s", name, vsn, json.dumps(clock.seconds))
    return _summarize(summary)


def _summarize(summary: dict) -> dict:
    create_markdown_artifact(release_summary_markdown(summary), key=artifact_key("release", summary["release"]),
                             description=f"release {summary['release']} {summary['version']}")
    return summary


def _released_already(store, name: str, commit: str, published: list[str]) -> dict | None:
    """The manifest of the published release of COMMIT, or None."""
    text = read_text(store, layout.commit_key(name, commit))
    try:
        vsn = json.loads(text)["version"] if text else None
    except (ValueError, KeyError, TypeError):
        return None
    if vsn not in published:
        return None
    manifest = read_manifest(store, name, vsn)
    return manifest if manifest.get("git_commit") == commit else None
