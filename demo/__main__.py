"""python -m demo run [--keep] | down

run: start a Prefect server (sqlite), moto's server (S3 + EC2) and three
local fleets of namespace hosts (staging 2, rehearsal 1, production 2);
make the blocks; release v1 of the example app and provision rehearsal and
production; apply the deployments and start a process worker. Then, each by
`python -m deployments.run ...` as a person or CI would, while a load
client hammers staging and production: provision staging; ship v2 to
staging; production refuses v2 (never rehearsed); the rehearsal passes;
production accepts v2, rolls back, and takes v2 again; then staging gets a
release that cannot be hot-loaded (a changed NIF library; for the Elixir
example, a changed protocol), shipped by a rolling restart; status of both;
the ingress sweep. Ends with a report and every deployment's last run read
from the Prefect API (all must be Completed). Without --keep everything is
stopped at the end; with it, `down` stops it later. Services already
answering (PREFECT_API_URL, --moto-url) are reused and left running.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from localfleet.services import answers, free_port, moto_server_cmd, prefect_server_cmd, wait_for

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("HOTDEPLOY_DEMO_DIR", "/var/lib/hotdeploy-demo"))
PIDS = STATE / "pids.json"
PY = sys.executable
HEARTBEAT_SECONDS = 30   # Prefect's minimum
FLEET_START_S = 180
EXAMPLES = {"example_app": "example_app", "elixir_app": "example_ex"}   # examples/ dir -> release name
APP = "example_app"
SOURCE = "example_app"
FLEETS = (("staging", 2), ("rehearsal", 1), ("production", 2))   # hosts .100-.104
# The releases that ship by a restart after the hot story: a NIF added (hot),
# then changed (restart); for Elixir, a changed protocol implementation.
RESTART_STORY = {"example_app": ("nif", "nif-2"), "elixir_app": ("protocol-change",)}


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _spawn(name: str, args: list[str], env: dict, pids: dict) -> subprocess.Popen:
    log = open(STATE / f"{name}.log", "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    pids[name] = proc.pid
    PIDS.write_text(json.dumps(pids))
    return proc


PREFECT_HOME = STATE / "prefect"
KEPT = STATE / "kept"          # the last demo ran with --keep: its Prefect database is the user's now


def down(wipe: bool = False) -> None:
    """Stop what `run --keep` left running (in reverse order of start);
    WIPE: remove its Prefect database too (the next demo starts empty anyway
    unless the last one was kept)."""
    pids = json.loads(PIDS.read_text()) if PIDS.exists() else {}
    for name in reversed(list(pids)):
        try:
            os.killpg(pids[name], signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pids[name], 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        else:
            try:
                os.killpg(pids[name], signal.SIGKILL)
            except ProcessLookupError:
                pass
        say(f"stopped {name}")
    PIDS.unlink(missing_ok=True)
    if wipe:
        shutil.rmtree(PREFECT_HOME, ignore_errors=True)
        KEPT.unlink(missing_ok=True)
        say(f"removed the demo's Prefect database ({PREFECT_HOME})")
    elif KEPT.exists():
        say("the Prefect database is kept for the next demo; remove it with: bash scripts/demo.sh down --wipe")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _commit_version(repo: Path, version: str) -> str:
    """Make REPO's tree the example app at VERSION and commit it."""
    for child in repo.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    subprocess.run([str(ROOT / "examples" / "checkout-version"), version, str(repo), SOURCE], check=True)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=demo", "-c", "user.email=demo@localhost", "commit", "-q", "-m", f"example app {version}")
    return _git(repo, "rev-parse", "HEAD")


def fleet_view(hosts: list[dict]) -> list[dict]:
    """Each host's version (HTTP) and node OS pid (read from /proc, as the tests do)."""
    import http.client
    rows = []
    for h in hosts:
        conn = http.client.HTTPConnection(h["address"], 8080, timeout=5)
        try:
            conn.request("GET", "/api/public/version")
            vsn = conn.getresponse().read().decode().strip()
        except OSError as e:
            vsn = f"down ({e})"
        finally:
            conn.close()
        pids = subprocess.run(["ip", "netns", "pids", h["netns"]], capture_output=True, text=True).stdout.split()
        beam = [p for p in pids if Path(f"/proc/{p}/comm").exists()
                and Path(f"/proc/{p}/comm").read_text().startswith("beam")]
        rows.append({"host": h["name"], "address": h["address"], "version": vsn, "pid": beam[0] if beam else None})
    return rows


def _with_environment(fleets: dict, hosts: list[dict]) -> list[dict]:
    where = {h["name"]: name for name, fleet in fleets.items() for h in fleet["hosts"]}
    return [{**h, "environment": where[h["name"]]} for h in hosts]


def _deployment_run(env: dict, name: str, expect: str | None = None, flow_run_name: str | None = None,
                    **params: str) -> dict:
    """`python -m deployments.run NAME`, as a person or CI would: the run,
    its logs, then its one line. EXPECT: the run is meant to fail, with this
    in its line (a refusal)."""
    args = [PY, "-m", "deployments.run", name, "--quiet"]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    if flow_run_name:
        args += ["--flow-run-name", flow_run_name]
    t0 = time.monotonic()
    cp = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = round(time.monotonic() - t0, 1)
    started = re.search(r": run (\S+) \([0-9a-f-]{36}\) started", cp.stdout)
    line = next((ln for ln in reversed(cp.stdout.splitlines()) if started and ln.startswith(started.group(1) + ": ")),
                "(no report)")
    as_expected = cp.returncode == 0 if expect is None else (cp.returncode == 1 and expect in line)
    say(f"  {name}: {seconds} s: {line}")
    return {"deployment": name, "exit_code": cp.returncode, "seconds": seconds, "line": line,
            "as_expected": as_expected, "output": "" if as_expected else (cp.stdout[-3000:] + cp.stderr[-3000:])}


def _timings(flow_run_name: str) -> dict[str, float]:
    """Seconds per task of the ship run and its subflows, from the Prefect API."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterName, FlowRunFilterParentTaskRunId,
                                                TaskRunFilter, TaskRunFilterFlowRunId)

    async def read() -> dict[str, float]:
        async with get_client() as c:
            [ship_run] = await c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[flow_run_name])))
            ids = [ship_run.id]
            subtasks = await c.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids)))
            children = await c.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[t.id for t in subtasks])))
            ids += [r.id for r in children]
            tasks = await c.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids)),
                                           limit=200)
            out: dict[str, float] = {}
            skip = {x.id for x in subtasks}  # subflow wrappers: their own tasks are listed instead
            for t in sorted(tasks, key=lambda t: t.start_time or t.expected_start_time):
                nested = bool((t.task_inputs or {}).get("__parents__"))  # a per-host step inside upgrade-<host>
                if t.id in skip or nested or not t.total_run_time:
                    continue
                key = t.name if t.name.startswith(("upgrade-", "provision-")) else re.sub(r"-[0-9a-f]{3}$", "", t.name)
                out[key] = round(out.get(key, 0) + t.total_run_time.total_seconds(), 2)
            for r in children:
                if r.total_run_time:
                    out[f"{(await c.read_flow(r.flow_id)).name} (subflow total)"] = round(
                        r.total_run_time.total_seconds(), 2)
            out["ship (total)"] = round(ship_run.total_run_time.total_seconds(), 2)
            return out
    return asyncio.run(read())


def run(keep: bool, moto_url: str | None) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    if PIDS.exists():
        say("a previous demo is still up: stopping it first")
        down()
    pids: dict[str, int] = {}
    env = {**os.environ, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_WORKER_QUERY_SECONDS": "2", "PYTHONUNBUFFERED": "1",
           # a run whose worker died is marked Crashed 90 s after its last heartbeat
           "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
    started = time.monotonic()
    try:
        if "PREFECT_API_URL" in os.environ and answers(os.environ["PREFECT_API_URL"] + "/health"):
            api = os.environ["PREFECT_API_URL"]
            say(f"using the Prefect server at {api}")
        else:
            port = 4200 if not answers("http://127.0.0.1:4200/api/health") else free_port()
            api = f"http://127.0.0.1:{port}/api"
            # A fresh database per demo (old runs and overdue schedules would fire
            # at start), unless the last demo was kept: then its runs are the user's.
            if not KEPT.exists():
                shutil.rmtree(PREFECT_HOME, ignore_errors=True)
            env.update(PREFECT_HOME=str(PREFECT_HOME), PREFECT_API_URL=api)
            proc = _spawn("prefect-server", prefect_server_cmd(port), env, pids)
            wait_for(api + "/health", "prefect server", proc=proc)
            say(f"Prefect UI: http://127.0.0.1:{port}")
        os.environ.update(PREFECT_API_URL=api, DO_NOT_TRACK="1")
        env["PREFECT_API_URL"] = api
        if not moto_url:
            mport = free_port()
            moto_url = f"http://127.0.0.1:{mport}"
            proc = _spawn("moto", moto_server_cmd(mport), env, pids)
            wait_for(moto_url + "/moto-api/", "moto server", proc=proc)
        say(f"moto (S3 + EC2): {moto_url}")
        fleet_file = STATE / "fleet.json"
        fleet_file.unlink(missing_ok=True)
        proc = _spawn("fleet", [PY, "-m", "localfleet", "serve", "--name", "demo", "--first", "100",
                                *(a for env_, size in FLEETS for a in ("--fleet", f"{env_}:{size}")),
                                "--moto-url", moto_url, "--state", str(fleet_file)], env, pids)
        # Its death ends the wait at once; a slow start is waited for: five
        # hosts took over 30 s on a busy 2-core machine running the suite.
        deadline = time.monotonic() + FLEET_START_S
        while time.monotonic() < deadline:
            if fleet_file.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        if not fleet_file.exists():
            raise SystemExit(f"the local fleet did not start within {FLEET_START_S} s; see {STATE}/fleet.log")
        fleets = json.loads(fleet_file.read_text())["environments"]
        for name, fleet in fleets.items():
            say(f"fleet {name}: " + ", ".join(h["address"] for h in fleet["hosts"]))

        from blocks.local import create_environments, create_store, register_block_types
        from deployments.apply import apply
        from deployments.report import last_runs, last_runs_table
        from flows.provision import provision_host
        from flows.release import release
        from tasks.probe import LoadClient

        register_block_types()
        create_store(moto_url)
        create_environments(moto_url, fleets, APP)   # production requires a passed rehearsal
        say("blocks: hotdeploy-store, hotdeploy-environment/" + ", hotdeploy-environment/".join(fleets))
        repo = STATE / "app"
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir(parents=True)
        _git(repo, "init", "-q")
        _commit_version(repo, "v1")
        say("release v1 (first release, no relup) and provision it on rehearsal and production")
        v1 = release(app_dir=str(repo), git_commit=_git(repo, "rev-parse", "HEAD"))["version"]
        for name in ("rehearsal", "production"):
            provision_host(app=APP, environment=name, version=v1)
        import contextlib
        with open(STATE / "deployments.log", "w") as quiet, contextlib.redirect_stdout(quiet):
            names = apply(app_dir=str(repo), app=APP, crash_after_seconds=3 * HEARTBEAT_SECONDS)
        say("deployments: " + ", ".join(names))
        _spawn("worker", [PY, "-m", "deployments.worker", "--pool", "hotdeploy"], env, pids)
        steps = [_deployment_run(env, "provision-host/staging")]
        served = [h for name in ("staging", "production") for h in fleets[name]["hosts"]]
        before = fleet_view(served)
        sha = _commit_version(repo, "v2")
        run_name = f"demo-ship-{int(time.time())}"
        say(f"load on staging and production from now on; ship v2 (commit {sha[:12]}) as CI does")
        with LoadClient([h["address"] for h in served], connections=2, max_seconds=1200) as load:
            time.sleep(1)
            steps.append(_deployment_run(env, "ship/staging", git_ref=sha, flow_run_name=run_name))
            say("production refuses a version that has not passed a rehearsal:")
            steps.append(_deployment_run(env, "hot-deploy/production", expect="never rehearsed"))
            steps.append(_deployment_run(env, "rehearsal/rehearsal"))
            say("rehearsed: production accepts it; then a rollback and the upgrade again")
            steps.append(_deployment_run(env, "hot-deploy/production"))
            steps.append(_deployment_run(env, "rollback/production"))
            steps.append(_deployment_run(env, "hot-deploy/production"))
            time.sleep(1)
        after = fleet_view(served)
        stats = load.stats.summary()
        restart = _restart_story(env, repo, fleets, served, steps)
        for name in ("status/staging", "status/production", "sweep-ingress/all"):
            steps.append(_deployment_run(env, name))
        deployments = asyncio.run(last_runs())
        ship = next(s for s in steps if s["deployment"] == "ship/staging")
        report = {"ship_exit_code": ship["exit_code"], "ship_seconds": ship["seconds"],
                  "hosts": [{"host": b["host"], "environment": h["environment"], "version_before": b["version"],
                             "version_after": a["version"], "pid_before": b["pid"], "pid_after": a["pid"]}
                            for h, b, a in zip(_with_environment(fleets, served), before, after)],
                  "rehearsal_host": fleet_view(fleets["rehearsal"]["hosts"]),
                  "requests": stats, "steps": steps, "deployments": deployments,
                  "steps_seconds": _timings(run_name) if ship["exit_code"] == 0 else {},
                  "restart": restart, "demo_seconds": round(time.monotonic() - started, 1)}
        (STATE / "report.json").write_text(json.dumps(report, indent=2))
        print_report(report)
        say("every deployment's last run, from the Prefect API (python -m deployments.report --all):")
        print(last_runs_table(deployments) + "\n")
        say("a run's report, read again later: python -m deployments.report --latest ship/staging")
        print(subprocess.run([PY, "-m", "deployments.report", "--latest", "ship/staging"], env=env, cwd=ROOT,
                             capture_output=True, text=True).stdout)
        for step in steps:
            if not step["as_expected"]:
                print(f"{step['deployment']}:\n{step['output']}")
        reasons = why_failed(report)
        say("hot deploy and restart OK" if not reasons else "demo FAILED:\n  " + "\n  ".join(reasons))
        return 0 if not reasons else 1
    finally:
        if keep:
            KEPT.touch()
            say(f"left running (Prefect UI at {api.removesuffix('/api')}); stop with: bash scripts/demo.sh down")
        else:
            KEPT.unlink(missing_ok=True)   # the next demo starts from an empty database
            down()


def why_failed(report: dict) -> list[str]:
    """What in REPORT falls short of the demo's promise, one line each
    (empty: it kept it), so a failed demo says why where it ends, not only
    in a table a CI log may have cut."""
    out = [f"{s['deployment']}: exit {s['exit_code']}, not as expected: {s['line']}"
           for s in report["steps"] if not s["as_expected"]]
    q = report["requests"]
    if q["failed"]:
        out.append(f"{q['failed']} of {q['sent']} requests failed during the hot deploys, first: "
                   + "; ".join(q.get("errors", [])[:3]))
    out += [f"{h['environment']} {h['host']}: pid {h['pid_before']} -> {h['pid_after']}, a hot deploy keeps it"
            for h in report["hosts"] if h["pid_before"] != h["pid_after"]]
    out += [f"{h['environment']} {h['host']}: still on {h['version_after']}"
            for h in report["hosts"] if h["version_after"] == h["version_before"]]
    out += [f"{d['deployment']}: last run {d.get('state') or 'missing'}"
            for d in report["deployments"] if not d["ok"]]
    return out + _restart_shortfalls(report["restart"]["hosts"])


def _restart_shortfalls(hosts: list[dict]) -> list[str]:
    """The restart story's promise, host by host: each staging host restarted
    into the new release (a new pid), every other one untouched and lost no
    request."""
    out = []
    for h in hosts:
        if h["environment"] == "staging" and not (h["result"] == "restarted" and h["pid_after"] != h["pid_before"]
                                                  and h["version_after"] != h["version_before"]):
            out.append(f"restart story, {h['host']}: {h['result']}, pid {h['pid_before']} -> {h['pid_after']}, "
                       f"{h['version_before']} -> {h['version_after']}")
        elif h["environment"] != "staging" and (h["failed"] or h["pid_after"] != h["pid_before"]):
            out.append(f"restart story, {h['host']} (not deployed): {h['failed']} failed requests, "
                       f"pid {h['pid_before']} -> {h['pid_after']}")
    return out


def _restart_story(env: dict, repo: Path, fleets: dict, served: list[dict], steps: list[dict]) -> dict:
    """Ship, to staging, the releases of RESTART_STORY (the last one cannot be
    hot-loaded) under load on staging and production; per host: version and
    pid before and after, the seconds its node was down (the hot-deploy's
    table) and the requests that failed on it."""
    from tasks.probe import LoadClient
    for version in RESTART_STORY[SOURCE][:-1]:
        steps.append(_deployment_run(env, "ship/staging", git_ref=_commit_version(repo, version)))
    last = RESTART_STORY[SOURCE][-1]
    sha = _commit_version(repo, last)
    say(f"{last}: a release that cannot be hot-loaded; ship it to staging by a rolling restart, under load")
    before = fleet_view(served)
    with LoadClient([h["address"] for h in served], connections=2, max_seconds=600) as load:
        time.sleep(1)
        steps.append(_deployment_run(env, "ship/staging", git_ref=sha))
        time.sleep(1)
    after = fleet_view(served)
    down = {row.get("host"): row for row in _latest_table("hot-deploy-staging")}
    hosts = []
    for h, b, a in zip(_with_environment(fleets, served), before, after):
        failed = sum(1 for e in load.stats.errors if e.startswith(h["address"] + ":"))
        row = down.get(h["name"], {}) if h["environment"] == "staging" else {}
        hosts.append({"host": h["name"], "environment": h["environment"], "version_before": b["version"],
                      "version_after": a["version"], "pid_before": b["pid"], "pid_after": a["pid"],
                      "result": row.get("result", "-"), "down_seconds": row.get("down s"), "failed": failed})
    return {"release": last, "hosts": hosts, "sent": load.stats.sent, "ok": not _restart_shortfalls(hosts)}


def _latest_table(key: str) -> list[dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read():
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                                sort=ArtifactSort.CREATED_DESC, limit=1)
            return found[0].data if found else "[]"
    data = asyncio.run(read())
    return json.loads(data) if isinstance(data, str) else data


def print_report(r: dict) -> None:
    print("\n== hotdeploy demo report ==")
    print(f"{'environment':<13}{'host':<25}{'version before':<20}{'version after':<20}{'pid before':<12}pid after")
    for h in r["hosts"]:
        print(f"{h['environment']:<13}{h['host']:<25}{h['version_before']:<20}{h['version_after']:<20}"
              f"{str(h['pid_before']):<12}{h['pid_after']}")
    for h in r["rehearsal_host"]:
        print(f"{'rehearsal':<13}{h['host']:<25}{'(rehearsed)':<20}{h['version']:<20}{'':<12}{h['pid']}")
    q = r["requests"]
    print(f"requests to staging and production from the ship to the last production deploy: {q['sent']} sent, "
          f"{q['failed']} failed, p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms, max {q['max_ms']} ms")
    print("deployment runs (python -m deployments.run ...):")
    for step in r["steps"]:
        mark = ("  << NOT AS EXPECTED" if not step["as_expected"] else
                "  (refused, as it should be)" if step["exit_code"] else "")
        print(f"  {step['deployment']:<24}{step['seconds']:>7.1f} s  exit {step['exit_code']}{mark}")
    print(f"ship/staging, by task: {r['ship_seconds']} s")
    for step, secs in r["steps_seconds"].items():
        print(f"  {step:<28}{secs:>8.2f} s")
    restart = r.get("restart")
    if restart:
        print(f"\n{restart['release']}, shipped to staging by a rolling restart ({restart['sent']} requests to "
              "staging and production meanwhile):")
        print(f"{'environment':<13}{'host':<25}{'result':<12}{'down s':<9}{'failed requests':<17}pid before -> after")
        for h in restart["hosts"]:
            print(f"{h['environment']:<13}{h['host']:<25}{h['result']:<12}{str(h['down_seconds'] or '-'):<9}"
                  f"{h['failed']:<17}{h['pid_before']} -> {h['pid_after']}")
    print(f"whole demo: {r['demo_seconds']} s\n")


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m demo")
    p.add_argument("command", choices=["run", "down"])
    p.add_argument("--keep", action="store_true", help="leave the server, fleet and worker running")
    p.add_argument("--moto-url", help="use this moto server instead of starting one")
    p.add_argument("--elixir", action="store_true", help="ship the Elixir example (examples/elixir_app)")
    p.add_argument("--wipe", action="store_true", help="down: also remove the demo's Prefect database")
    args = p.parse_args()
    if args.command == "down":
        down(args.wipe)
        return 0
    global APP, SOURCE
    if args.elixir:
        SOURCE = "elixir_app"
        APP = EXAMPLES[SOURCE]
    return run(args.keep, args.moto_url)


if __name__ == "__main__":
    sys.exit(main())
