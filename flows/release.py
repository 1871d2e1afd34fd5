"""release: test in a container, build with a relup against the previous
release, verify, publish. The CI half of the seed's pipeline (steps 1-6)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import DEFAULT_STORE_BLOCK, load_docker_host, load_package_store
from hotdeploy import layout, params
from hotdeploy.appup import parse_modinfo, plan_appups
from hotdeploy.manifest import build_manifest, manifest_bytes
from hotdeploy.report import StepClock, release_summary_markdown
from hotdeploy.layout import parse_checksum
from hotdeploy.versions import next_version
from tasks.container import build_release, ensure_builder_image, inspect_modules, test_in_container
from tasks.store import download, list_store, move_pointer, put_new, read_manifest, read_pointer, read_text
from tasks.workspace import (describe_app, make_upgrade_package, prepare_workspace, remove_workspace,
                             restore_previous, verify_artifact, write_appups)


@flow(name="release", task_runner=ThreadPoolTaskRunner(max_workers=4))
def release(
    app_dir: str,
    store_block: str = DEFAULT_STORE_BLOCK,
    version: str | None = None,
    test_command: str = "rebar3 eunit",
    git_commit: str | None = None,
    docker_host_block: str | None = None,
) -> dict:
    """Build APP_DIR's release as a hot upgrade from the store's current
    version and publish it. `version` defaults to the build timestamp."""
    params.block_name("store_block", store_block)
    if version is not None:
        params.version(version, allow_latest=False)
    if docker_host_block is not None:
        params.block_name("docker_host_block", docker_host_block)
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
        previous = pointer.version
        if previous is not None and previous not in listing.published:
            log.warning("the VERSION pointer names %s, which is not a complete publish: building from the "
                        "newest published version instead", previous)
            previous = listing.published[-1] if listing.published else None
        if previous:
            read_manifest(store, name, previous)
        if listing.incomplete:
            log.warning("ignoring interrupted publishes of %s: %s", name, ", ".join(listing.incomplete))

    with clock.step("builder image"):
        image = ensure_builder_image(app.dockerfile, engine)
    workspace = prepare_workspace(app)
    try:
        with clock.step("test"):
            test_in_container(engine, image, workspace, test_command)

        with clock.step("next version"):
            vsn = str(next_version(datetime.now(timezone.utc), listing.taken, version))
            log.info("building %s %s, upgrading from %s", name, vsn, previous or "nothing (first release)")

        with clock.step("fetch previous"):
            if previous:
                checksum = parse_checksum(read_text(store, layout.checksum_key(name, previous)) or "")
                tarball = download(store, layout.tarball_key(name, previous),
                                   workspace / ".hotdeploy-previous.tar.gz")
                restore_previous(tarball, checksum, workspace, name, previous)

        with clock.step("build with relup"):
            report = parse_modinfo(inspect_modules(engine, image, workspace, name, vsn, previous))
            previous_erts = report.erts.get("prev")
            plan = plan_appups(report.apps.get("prev", []), report.apps.get("new", []), report.shipped)
            write_appups(workspace, plan, report.src_dirs)
            tarball = build_release(engine, image, workspace, name, vsn, previous)

        with clock.step("verify"):
            facts, sha256 = verify_artifact(tarball, name, vsn, previous, previous_erts)
            package = make_upgrade_package(tarball, workspace, name, facts, previous) if previous else None

        with clock.step("publish"):
            manifest = build_manifest(
                release=name, facts=facts, previous=previous, sha256=sha256,
                size=tarball.stat().st_size, built_at=datetime.now(timezone.utc),
                otp_release=report.otp_release, git_commit=git_commit,
                appup=[i for a in plan.appups for i in a.up], builder_image=image.tag,
                upgrade_package=package and {"from": package.upgrade_from, "sha256": package.sha256,
                                             "size": package.size, "libs": package.libs})
            put_new(store, layout.tarball_key(name, vsn), tarball, "application/gzip")
            if package:
                put_new(store, layout.upgrade_package_key(name, vsn), package.path, "application/gzip")
            put_new(store, layout.checksum_key(name, vsn),
                    layout.checksum_line(sha256, vsn).encode(), "text/plain")
            put_new(store, layout.manifest_key(name, vsn), manifest_bytes(manifest), "application/json")
            pointer_now = move_pointer(store, name, vsn, pointer)  # last: only complete versions are named
    finally:
        remove_workspace(workspace)

    summary = {"release": name, "version": vsn, "previous": previous, "sha256": sha256,
               "builder_image": image.tag, "builder_image_built": image.built,
               "appup": manifest["appup"], "timings": clock.seconds, "pointer": pointer_now}
    create_markdown_artifact(release_summary_markdown(summary), key=f"release-{name.replace('_', '-')}",
                             description=f"release {name} {vsn}")
    log.info("released %s %s: %s", name, vsn, json.dumps(clock.seconds))
    return summary
