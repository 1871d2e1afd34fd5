"""ship: release, then hot_deploy to one environment. What the seed's
circle.yml did on every push to master; CI triggers it with
`prefect deployment run 'ship/staging' --param git_ref=<sha> --watch`, then
`python -m deployments.report --latest ship/staging` prints what shipped or
why not."""
from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.settings import PREFECT_UI_URL
from prefect.states import Completed

from blocks import DEFAULT_STORE_BLOCK
from hotdeploy import params
from hotdeploy.report import artifact_key, ship_summary_markdown
from tasks.workspace import clone_app, export_git_ref, is_git_url, remove_workspace

from .deploy import hot_deploy
from .fleet import FleetFailed
from .outcome import explained
from .release import release


@flow(name="ship")
@explained
def ship(app_dir: str, environment: str, git_ref: str | None = None,
         store_block: str = DEFAULT_STORE_BLOCK, test_command: str | None = None, rebuild: bool = False,
         docker_host_block: str | None = None, strategy: str = "auto"):
    """Test, build and publish the app, then hot-upgrade an environment to it.

    Args:
        app_dir: the app's git URL (the worker clones it), or its git checkout on the worker
        environment: the hotdeploy-environment block to upgrade, e.g. staging
        git_ref: the commit, branch or tag to ship (CI passes the pushed sha); empty: the working tree
        store_block: the S3Bucket block of the package store
        test_command: run in the builder container before anything is built; empty: `rebar3 eunit` or `mix test`
        rebuild: build again even if this commit was released already (otherwise its release is deployed)
        docker_host_block: a DockerHost block for the container engine (any machine: the build's files go
            through its API); empty: the local engine
        strategy: auto (hot where a host's version allows it, else a restart), hot, restart
    """
    params.block_name("environment", environment)
    params.strategy(strategy)
    params.block_name("store_block", store_block)
    # A git URL is cloned into scratch space (a worker on any machine); a path
    # is a checkout on this worker.
    clone = clone_app(app_dir) if is_git_url(app_dir) else None
    try:
        repo = str(clone) if clone else app_dir
        source, commit = (export_git_ref(repo, git_ref or "HEAD") if git_ref or clone else (app_dir, None))
        try:
            built_state = release(app_dir=str(source), store_block=store_block, git_commit=commit,
                                  test_command=test_command, rebuild=rebuild,
                                  docker_host_block=docker_host_block, return_state=True)
        finally:
            if git_ref or clone:
                remove_workspace(source)
    finally:
        if clone:
            remove_workspace(clone)
    built = built_state.result()          # a failed release fails the ship with its cause
    deploy_state = hot_deploy(app=built["release"], environment=environment, version=built["version"],
                              store_block=store_block, strategy=strategy, return_state=True)
    outcome = deploy_state.result(raise_on_failure=False)
    rows = [o.as_row() for o in outcome.outcomes] if isinstance(outcome, FleetFailed) else (
        outcome if isinstance(outcome, list) else [])
    ui = PREFECT_UI_URL.value()
    links = {name: f"{ui}/runs/flow-run/{s.state_details.flow_run_id}" if ui else str(s.state_details.flow_run_id)
             for name, s in (("release", built_state), ("hot-deploy", deploy_state))}
    text, line = ship_summary_markdown(built, environment, rows, links, deploy_state.message
                                       if deploy_state.is_failed() else None)
    create_markdown_artifact(text, key=artifact_key("ship", environment), description=line)
    deployed = deploy_state.result()      # a failed deploy fails the ship with its cause
    return Completed(message=line, data={"release": built, "deploy": deployed})
