"""Create (or update) every deployment on a `process` work pool:
`python -m deployments.apply --app-dir PATH`.

Python rather than prefect.yaml: the source path, the app checkout, the
environments and the schedules differ per installation, and here they are
arguments checked before anything is written.

  ship/staging             CI: `python -m deployments.run ship/staging --param git_ref=<sha>`
  hot-deploy/production    a person, in the UI; requires a passed rehearsal
  rollback/production      a person, in the UI
  status/production, status/staging
  rehearsal/rehearsal      cron: up, down, up again under load; records the verdict
  sweep-ingress/all        cron: revoke SSH rules killed runs left, in every environment
  provision-host/staging
  deploy-shard/<each>      a shard of a big deploy's wave (the block's shard_size), started by that deploy
"""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectAlreadyExists

from deployments.report import STARTED_BY_A_RUN

ROOT = Path(__file__).resolve().parent.parent


async def ensure_pool(name: str) -> None:
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def apply(app_dir: str, app: str = "example_app", pool: str = "hotdeploy", store_block: str = "hotdeploy-store",
          rehearsal_cron: str = "0 4 * * *", sweep_cron: str = "*/15 * * * *",
          environments: tuple[str, ...] = ("staging", "rehearsal", "production"),
          crash_after_seconds: int | None = None, code_repo: str | None = None, code_branch: str | None = None,
          code_credentials_block: str | None = None, docker_host_block: str | None = None,
          pool_for: dict[str, str] | None = None) -> list[str]:
    """CRASH_AFTER_SECONDS: a run silent that long (no heartbeat, no final
    state) is marked Crashed; default 3 heartbeats of this process's
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY (set the same on the workers).
    CODE_REPO: the git URL workers pull this project's flow code from (at
    CODE_BRANCH; a private one with the access token in the Secret block
    CODE_CREDENTIALS_BLOCK); empty: this checkout's path, for workers on
    this machine. DOCKER_HOST_BLOCK: the DockerHost block ship builds on
    (an engine on another machine works); empty: the worker's local engine.
    POOL_FOR: environment -> work pool, for the deployments of that
    environment (e.g. production's runs only on workers inside its
    network); the others go to POOL."""
    from prefect import Flow
    from prefect.runner.storage import GitRepository

    from tasks.lock import ensure_lock

    from .automations import ensure_crash_detection
    pool_for = pool_for or {}
    for name in {pool, *pool_for.values()}:
        asyncio.run(ensure_pool(name))
    asyncio.run(ensure_crash_detection(crash_after_seconds))

    for environment in environments:   # the deploy locks exist before any run needs one
        ensure_lock(environment)

    if code_repo:
        credentials = None
        if code_credentials_block:
            from prefect.blocks.system import Secret
            credentials = {"access_token": Secret.load(code_credentials_block)}
        source = GitRepository(url=code_repo, branch=code_branch, credentials=credentials)
    else:
        source = str(ROOT)

    def deploy(entrypoint: str, name: str, parameters: dict, description: str, cron: str | None = None,
               environment: str | None = None, tags: tuple[str, ...] = ()) -> str:
        flow = Flow.from_source(source=source, entrypoint=entrypoint)
        # One run of a deployment at a time, the others queued: the UI shows
        # them AwaitingConcurrencySlot instead of Running while they wait for
        # the environment's lock.
        one_environment = "environment" in parameters
        flow.deploy(name=name, work_pool_name=pool_for.get(parameters.get("environment", environment), pool),
                    parameters=parameters, description=description,
                    schedules=[CronSchedule(cron=cron, timezone="UTC")] if cron else None,
                    concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy="ENQUEUE")
                    if one_environment else None,
                    tags=["hotdeploy", *tags], print_next_steps=False, ignore_warnings=True)
        return f"{flow.name}/{name}"

    common = {"store_block": store_block}
    # A deploy's waves bigger than the environment's shard_size run as runs
    # of these, side by side on the pool's workers (many at once: no limit).
    shards = [deploy("flows/shard.py:deploy_shard", environment, {},
                     "One shard of a hot-deploy run's wave, started by that run.", environment=environment,
                     tags=(STARTED_BY_A_RUN,))
              for environment in environments]
    return [
        deploy("flows/ship.py:ship", "staging",
               {"app_dir": app_dir, "environment": "staging", **common,
                **({"docker_host_block": docker_host_block} if docker_host_block else {})},
               "CI: test, release, hot-deploy to staging. Pass git_ref."),
        deploy("flows/deploy.py:hot_deploy", "production",
               {"app": app, "environment": "production", "version": "latest", **common},
               "Hot upgrade of production; refuses unrehearsed versions unless allow_unrehearsed."),
        deploy("flows/rollback.py:rollback", "production", {"app": app, "environment": "production", **common},
               "Hot downgrade of production to the previous (or a named) version."),
        deploy("flows/status.py:status", "production", {"app": app, "environment": "production"},
               "Which version each production host runs."),
        deploy("flows/status.py:status", "staging", {"app": app, "environment": "staging"},
               "Which version each staging host runs."),
        deploy("flows/rehearsal.py:rehearsal", "rehearsal", {"app": app, "environment": "rehearsal", **common},
               "Up, down, up again under load on the rehearsal environment.", cron=rehearsal_cron),
        deploy("flows/sweep.py:sweep_ingress", "all", {},
               "Revoke SSH rules that killed runs left, in every environment (skips one a deploy holds).",
               cron=sweep_cron),
        deploy("flows/provision.py:provision_host", "staging", {"app": app, "environment": "staging", **common},
               "First install on bare staging hosts."),
        *shards,
    ]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m deployments.apply")
    p.add_argument("--app-dir", required=True,
                   help="the app's git URL (each worker clones it), or its git checkout on the worker machines")
    p.add_argument("--app", default="example_app")
    p.add_argument("--pool", default="hotdeploy")
    p.add_argument("--pool-for", action="append", default=[], metavar="ENVIRONMENT=POOL",
                   help="run that environment's deployments on this work pool instead (repeat)")
    p.add_argument("--store-block", default="hotdeploy-store")
    p.add_argument("--rehearsal-cron", default="0 4 * * *")
    p.add_argument("--sweep-cron", default="*/15 * * * *")
    p.add_argument("--crash-after-seconds", type=int, default=None,
                   help="mark a run Crashed after this long without a heartbeat "
                        "(default: 3 x PREFECT_FLOWS_HEARTBEAT_FREQUENCY)")
    p.add_argument("--code-repo", help="git URL the workers pull hotdeploy's flow code from (default: this "
                                       "checkout's path, for workers on this machine)")
    p.add_argument("--code-branch", help="branch of --code-repo (default: its default branch)")
    p.add_argument("--code-credentials-block", help="a Secret block holding the access token of a private --code-repo")
    p.add_argument("--docker-host-block", help="the DockerHost block ship/staging builds on (default: the "
                                               "worker's local engine)")
    args = p.parse_args()
    pool_for = dict(spec.split("=", 1) for spec in args.pool_for if "=" in spec)
    if len(pool_for) != len(args.pool_for):
        p.error("--pool-for takes ENVIRONMENT=POOL")
    for name in apply(args.app_dir, args.app, args.pool, args.store_block, args.rehearsal_cron, args.sweep_cron,
                      crash_after_seconds=args.crash_after_seconds, code_repo=args.code_repo,
                      code_branch=args.code_branch, code_credentials_block=args.code_credentials_block,
                      docker_host_block=args.docker_host_block, pool_for=pool_for):
        print(f"deployment {name}")
    for name in sorted({args.pool, *pool_for.values()}):
        print(f"start a worker: python -m deployments.worker --pool {name}")


if __name__ == "__main__":
    main()
