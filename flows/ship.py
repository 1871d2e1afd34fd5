"""ship: release, then hot_deploy to one environment. What the seed's
circle.yml did on every push to master; CI triggers it with
`prefect deployment run 'ship/staging' --param git_ref=<sha> --watch`."""
from __future__ import annotations

from prefect import flow

from blocks import DEFAULT_STORE_BLOCK
from hotdeploy import params
from tasks.workspace import export_git_ref, remove_workspace

from .deploy import hot_deploy
from .release import release


@flow(name="ship")
def ship(app_dir: str, environment: str, git_ref: str | None = None,
         store_block: str = DEFAULT_STORE_BLOCK, test_command: str = "rebar3 eunit", rebuild: bool = False) -> dict:
    """Test, build and publish APP_DIR (at GIT_REF when given: APP_DIR is then
    a git checkout), then hot-upgrade ENVIRONMENT to the new version. A
    commit released already is not rebuilt (REBUILD forces it): its release
    is deployed, so rerunning a failed ship retries the deploy."""
    params.block_name("environment", environment)
    params.block_name("store_block", store_block)
    source, commit = (export_git_ref(app_dir, git_ref) if git_ref else (app_dir, None))
    try:
        built = release(app_dir=str(source), store_block=store_block, git_commit=commit,
                        test_command=test_command, rebuild=rebuild)
    finally:
        if git_ref:
            remove_workspace(source)
    deployed = hot_deploy(app=built["release"], environment=environment, version=built["version"],
                          store_block=store_block)
    return {"release": built, "deploy": deployed}
