"""Benchmarks, each beside a baseline measured in the same run:
python -m benchmarks.run [--sizes 1,4,16,32] [--out benchmarks/out]

1. pipeline: each step of `ship` v1 -> v2 (release + hot_deploy, 3 hosts,
   warm builder image) vs the seed-style shell script shipping the same
   sources (baseline_ship.sh), each from a store holding v1 and a fresh
   fleet on v1;
2. fleet scaling: for each size, three contenders ship v1 -> v2, each on a
   fresh fleet on v1 (cold hosts: only v1 unpacked), under the same load
   client (its own process), timed whole (and once more on another fresh
   fleet without load, for the hosts' CPU and the unloaded time): the hot_deploy flow from start to
   end (own process), a sequential ssh loop and an `xargs -P` loop of the
   seed's `bin/<rel> upgrade`, each with its own ingress and transfer;
3. availability: the load during each contender, and the same load for as
   long with no upgrade;
4. cost: the deployer's own peak RSS (VmHWM read in its process), host CPU
   per host upgrade (/proc accounting of every process in the hosts'
   namespaces), Prefect server memory, per-host time p50/p95;
5. restart: the same v1 -> v2 at the largest size up to 16 hosts, by a
   rolling restart (hot_deploy strategy=restart: canary, waves of 25 %, the
   gate) beside an `xargs -P` loop doing `bin/<rel> stop`, unpack, start,
   each on a fresh fleet on v1 under the same load: time, failed requests,
   each host's seconds down.

Writes OUT/results.json, OUT/results.md, OUT/fleet_scaling.png and
OUT/latency.png. Nothing here is asserted: it measures and prints.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "example_app"


_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.0f} s] {msg}", flush=True)


def start_services(work: Path) -> tuple[subprocess.Popen, str, object, str]:
    from localfleet.services import free_port, prefect_server_cmd, wait_for
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    os.environ.update(PREFECT_HOME=str(work / "prefect"), PREFECT_API_URL=api, DO_NOT_TRACK="1",
                      PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    server = subprocess.Popen(prefect_server_cmd(port), stdout=open(work / "server.log", "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    import logging

    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    host, mport = moto.get_host_and_port()
    wait_for(api + "/health", "prefect server", proc=server)
    return server, api, moto, f"http://{host}:{mport}"


ELIXIR_APP = "example_ex"


def checkout(version: str, work: Path, source: str = "example_app") -> Path:
    dest = Path(tempfile.mkdtemp(prefix=f"{version}-", dir=work))
    subprocess.run([str(ROOT / "examples" / "checkout-version"), version, str(dest), source], check=True)
    return dest


class Fleet:
    """A local fleet registered in moto, with its environment block."""

    def __init__(self, name: str, size: int, first: int, moto_url: str, app: str = APP, **env_fields):
        from localfleet.fleet import Fleet as NsFleet
        self.ns = NsFleet(name, size, first=first)
        self.app = app
        self.env_fields = {"canary": 0, "wave_size": "100%", "max_parallel": 32, **env_fields}   # as xargs -P
        try:
            self._start(name, moto_url)
        except BaseException:
            self.ns.stop()
            raise

    def _start(self, name: str, moto_url: str) -> None:
        import boto3

        from blocks.local import create_environment
        from localfleet.ec2 import register
        from localfleet.fleet import GroupEnforcer
        self.ns.start()
        self.ec2 = boto3.client("ec2", endpoint_url=moto_url, region_name="us-east-1",
                                aws_access_key_id="x", aws_secret_access_key="x")
        reg = register(self.ec2, self.ns.hosts, environment=name)
        self.group = reg.group_id
        self.enforcer = GroupEnforcer(self.ec2, self.group, self.ns.hosts)
        self.enforcer.start()
        self.name = name
        self.known_hosts = self.ns.dir / "known_hosts"
        self.known_hosts.write_text(self.ns.known_hosts())
        create_environment(moto_url, {"environment": name, "security_group_id": self.group,
                                      "deployer_key": str(self.ns.deployer_key),
                                      "known_hosts": self.ns.known_hosts()}, name, app=self.app,
                           runtime_config=f'[{{{self.app}, [{{greeting, "Hello"}}]}}].\n',
                           health_soak_seconds=1.0, **self.env_fields)

    @property
    def addresses(self) -> list[str]:
        return [h.address for h in self.ns.hosts]

    def ingress(self, action: str) -> None:
        getattr(self.ec2, f"{action}_security_group_ingress")(GroupId=self.group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.18.0.1/32"}]}])

    def stop(self) -> None:
        self.enforcer.stop()
        self.ns.stop()


def shell_upgrade(fleet: Fleet, vsn: str, tarball: Path, parallel: int, script: str = "upgrade_host.sh") -> float:
    """The seed's way, timed whole: open the ingress rule (one EC2 call),
    SCRIPT per host through `xargs -P PARALLEL` (upgrade_host.sh: scp the full
    tarball, `bin/<rel> upgrade`; restart_host.sh: stop, unpack, start),
    revoke the rule."""
    env = {**os.environ, "KEY": str(fleet.ns.deployer_key), "KNOWN_HOSTS": str(fleet.known_hosts),
           "ROOT": f"/srv/{APP}", "REL": APP}
    start = time.monotonic()
    fleet.ingress("authorize")
    try:
        subprocess.run(["xargs", "-P", str(parallel), "-I{}", "bash", str(ROOT / "benchmarks" / script),
                        "{}", vsn, str(tarball)], input="\n".join(fleet.addresses), text=True, env=env, check=True)
    finally:
        fleet.ingress("revoke")
    return time.monotonic() - start


def deploy_in_own_process(fleet: Fleet, vsn: str, store: str, strategy: str = "auto") -> dict:
    """hot_deploy in a child process: flow wall time, rows and peak RSS, as it measured them."""
    return flow_in_own_process("benchmarks.deploy_once", fleet.name, vsn, store, strategy)


def flow_in_own_process(module: str, *args: str) -> dict:
    """python -m MODULE ARGS (a flow that measures itself): its JSON line."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} in a child process failed ({proc.returncode}): {proc.stdout[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# The floor's host tasks wait as long as a bench host's gate soaks (health_soak_seconds)
FLOOR_TASK_S = 1.0


class Load:
    """benchmarks/load.py in its own process, around one contender."""

    def __init__(self, addresses: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.load", *addresses], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.result: dict = {}

    def __enter__(self) -> "Load":
        return self

    def __exit__(self, *exc) -> None:
        out, _ = self.proc.communicate("", timeout=120)
        self.result = json.loads(out.strip().splitlines()[-1])


def host_cpu_s(fleet: Fleet) -> float:
    """CPU seconds used so far by every process in the fleet's namespaces:
    utime+stime, plus cutime+cstime of the children they reaped (SSH
    sessions, erl_call, escripts of relx's script), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for host in fleet.ns.hosts:
        for pid in host.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15])
    return total / tick


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 3) if xs else 0.0


SOAK_S = 1.0   # health_soak_seconds of the benchmark environments (the gate's soak is on)


def fresh_fleet(name: str, n: int, first: int, moto_url: str, store: str, v1: str, app: str = APP,
                **env_fields) -> Fleet:
    """A new fleet of N hosts, each provisioned with V1 and nothing else: the
    same starting state for every contender."""
    from flows.provision import provision_host
    fleet = Fleet(name, n, first, moto_url, app, **env_fields)
    try:
        provision_host(app=app, environment=fleet.name, version=v1, store_block=store)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def bench_pipeline(moto_url: str, work: Path, store: str, elixir: bool = True) -> dict:
    """ship v2 over hosts on v1, ours vs the seed-style script, each from a
    store holding only v1 and a fresh 3-host fleet on v1."""
    from flows.release import release
    from blocks.local import create_store
    log("pipeline: 3 hosts on v1, ship v2: ours, then the baseline script, each from the same state")
    v1 = release(app_dir=str(checkout("v1", work)), store_block=store)
    base_store = store + "-baseline"
    create_store(moto_url, bucket=base_store, name=base_store)
    _copy_version(moto_url, store, base_store, v1["version"])
    rel, ours = ship_timed("bpipe", 200, moto_url, work, store, v1["version"], "example_app")
    fleet = fresh_fleet("bpipb", 3, 203, moto_url, store, v1["version"])
    try:
        from prefect_aws import S3Bucket
        env = {**os.environ, "WS": str(checkout("v2", work)), "IMAGE": rel["builder_image"],
               "BUCKET": S3Bucket.load(base_store).bucket_name, "PY": sys.executable, "APP": APP,
               "VSN": rel["version"], "HOSTS": " ".join(fleet.addresses), "KEY": str(fleet.ns.deployer_key),
               "KNOWN_HOSTS": str(fleet.known_hosts), "ROOT": f"/srv/{APP}", "REL": APP, "MOTO": moto_url,
               "GROUP": fleet.group, "CIDR": "198.18.0.1/32"}
        start = time.monotonic()
        out = subprocess.run(["bash", str(ROOT / "benchmarks" / "baseline_ship.sh")], env=env, check=True,
                             capture_output=True, text=True).stdout
        base_total = time.monotonic() - start
    finally:
        fleet.stop()
    b = json.loads(out.strip().splitlines()[-1])
    baseline = {"builder image": 0.0, "test": b["test"], "fetch previous": b["fetch_previous"],
                "build with relup": b["build"], "verify": b["verify"], "publish": b["publish"],
                "per-host upgrade (max)": b["upgrade"],
                "ingress, discovery, revoke, overhead": b["authorize"] + b["revoke"], "total": base_total}
    result = {"hosts": 3, "pair": "v1 -> v2 (same sources)", "ours": {k: round(v, 3) for k, v in ours.items()},
              "baseline": {k: round(v, 3) for k, v in baseline.items()}}
    if not elixir:
        return result
    # The same ship of the Elixir example (its own store, fresh fleet on its
    # v1, its builder image warmed by that v1): what a mix project costs.
    log("pipeline: the same for the Elixir example (examples/elixir_app)")
    ex_store = store + "-elixir"
    create_store(moto_url, bucket=ex_store, name=ex_store)
    ex_v1 = release(app_dir=str(checkout("v1", work, "elixir_app")), store_block=ex_store)
    _, ours_elixir = ship_timed("bpipx", 206, moto_url, work, ex_store, ex_v1["version"], "elixir_app")
    return {**result, "ours_elixir": {k: round(v, 3) for k, v in ours_elixir.items()}}


def ship_timed(name: str, first: int, moto_url: str, work: Path, store: str, v1: str,
               source: str) -> tuple[dict, dict]:
    """`ship` of SOURCE's v2 to a fresh 3-host fleet on V1, timed whole; the
    release summary and the time of each step."""
    from flows.ship import ship
    app = APP if source == "example_app" else ELIXIR_APP
    fleet = fresh_fleet(name, 3, first, moto_url, store, v1, app)
    try:
        start = time.monotonic()
        shipped = ship(app_dir=str(checkout("v2", work, source)), environment=fleet.name, store_block=store)
        ship_total = time.monotonic() - start
    finally:
        fleet.stop()
    rel, rows = shipped["release"], shipped["deploy"]
    per_host = max(sum(r["seconds"].values()) for r in rows)
    deploy_total = ship_total - sum(rel["timings"].values())
    return rel, {"builder image": rel["timings"]["builder image"], "test": rel["timings"]["test"],
                 "fetch previous": rel["timings"]["fetch previous"] + rel["timings"]["store"],
                 "build with relup": rel["timings"]["build with relup"], "verify": rel["timings"]["verify"],
                 "publish": rel["timings"]["publish"], "per-host upgrade (max)": per_host,
                 "ingress, discovery, revoke, overhead": deploy_total - per_host, "total": ship_total}


def _copy_version(moto_url: str, src_block: str, dest_block: str, vsn: str) -> None:
    from prefect_aws import S3Bucket
    from hotdeploy import layout
    src, dest = S3Bucket.load(src_block), S3Bucket.load(dest_block)
    s3 = src.credentials.get_s3_client()
    keys = [layout.tarball_key(APP, vsn), layout.checksum_key(APP, vsn), layout.manifest_key(APP, vsn)]
    for key in keys:
        s3.copy_object(Bucket=dest.bucket_name, Key=key, CopySource={"Bucket": src.bucket_name, "Key": key})
    s3.put_object(Bucket=dest.bucket_name, Key=layout.pointer_key(APP), Body=vsn.encode())


def bench_scaling(moto_url: str, work: Path, store: str, sizes: list[int], server_pid: int) -> list[dict]:
    """For each size, three contenders ship v1 -> v2, each on a fresh fleet
    on v1, under the same load (its own process), timed whole: ours (the
    hot_deploy flow, start to end, in its own process), a sequential ssh loop
    and an `xargs -P` loop of the seed's upgrade (each with its own ingress
    and the full tarball, as it has no other)."""
    from flows.release import release
    from tasks.store import download
    from prefect_aws import S3Bucket
    from hotdeploy import layout
    from localfleet.services import rss_kb
    v1 = release(app_dir=str(checkout("v1", work)), store_block=store)["version"]
    v2 = release(app_dir=str(checkout("v2", work)), store_block=store)["version"]
    tarball = download(S3Bucket.load(store), layout.tarball_key(APP, v2), work / "v2.tar.gz")
    results, first = [], 10
    for n in sizes:
        row: dict = {"hosts": n}
        for contender in ("ours", "sequential", "xargs"):
            key = {"ours": "ours", "sequential": "sequential_ssh", "xargs": "xargs_parallel"}[contender]

            def run(fleet: Fleet) -> tuple[float, dict | None]:
                if contender == "ours":
                    deployed = deploy_in_own_process(fleet, v2, store)
                    return deployed["seconds"], deployed
                return shell_upgrade(fleet, v2, tarball, parallel=1 if contender == "sequential" else n), None

            # Pass 1, no load: the hosts' CPU for the upgrade alone (under load the
            # nodes' request work would be counted too).
            log(f"fleet scaling: {n} host(s), {contender}, host CPU (no load)")
            fleet = fresh_fleet(f"bs{n}{contender[0]}c", n, first, moto_url, store, v1)
            first = first + n if first + 2 * n < 250 else 10
            try:
                cpu0 = host_cpu_s(fleet)
                quiet_seconds, _ = run(fleet)
                row[f"{key}_host_cpu_s_per_host" if key != "ours" else "host_cpu_s_per_host"] = \
                    round((host_cpu_s(fleet) - cpu0) / n, 3)
                row[f"{key}_no_load_s"] = round(quiet_seconds, 3)
            finally:
                fleet.stop()
            # Pass 2, a fresh fleet again, under the load: time and availability.
            log(f"fleet scaling: {n} host(s), {contender}, under load")
            fleet = fresh_fleet(f"bs{n}{contender[0]}", n, first, moto_url, store, v1)
            first = first + n if first + 2 * n < 250 else 10
            try:
                with Load(fleet.addresses) as load:
                    seconds, deployed = run(fleet)
                if contender == "ours":
                    with Load(fleet.addresses) as quiet:   # the same load for as long, no upgrade
                        time.sleep(seconds)
                    per_host = [sum(r["seconds"].values()) for r in deployed["rows"]]
                    row.update({
                        "ours_s": seconds,
                        "per_host_p50_s": pct(per_host, 50), "per_host_p95_s": pct(per_host, 95),
                        "per_host_no_soak_p50_s": pct([x - SOAK_S for x in per_host], 50),
                        "sent_kb_per_host": round(sum(r.get("sent_bytes", 0) for r in deployed["rows"]) / n / 1024, 1),
                        "deployer_peak_rss_mb": round(deployed["peak_rss_kb"] / 1024, 1),
                        "prefect_server_rss_mb": round(rss_kb(server_pid, "VmRSS") / 1024, 1),
                        "prefect_server_peak_mb": round(rss_kb(server_pid, "VmHWM") / 1024, 1),
                        "load_during_upgrade": load.result["summary"],
                        "load_without_upgrade": quiet.result["summary"],
                        "latency_timeline": load.result["timeline"]})
                else:
                    row.update({f"{key}_s": round(seconds, 3), f"{key}_load": load.result["summary"]})
            finally:
                fleet.stop()
        results.append(row)
    base = results[0]
    for r in results:
        for k in ("ours_s", "sequential_ssh_s", "xargs_parallel_s"):
            r[k.replace("_s", "_vs_1host")] = round(r[k] / base[k], 2) if base[k] else None
    return results


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of PID and every live descendant (the Prefect server and
    its workers), from /proc: utime+stime+cutime+cstime each."""
    tick, stats = os.sysconf("SC_CLK_TCK"), {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    tree, total = {pid}, 0
    for _ in range(8):     # a few levels deep is all a server has
        tree |= {p for p, (ppid, _) in stats.items() if ppid in tree}
    total = sum(stats[p][1] for p in tree if p in stats)
    return total / tick


# Lighter hosts for --light-hosts: one scheduler of each kind and no busy
# waiting, so 128 idle nodes leave the 2 cores to the upgrade. The service's
# environment (block field service_environment), for every contender alike.
LIGHT_HOST_ERL_FLAGS = "+S 1:1 +SDcpu 1:1 +SDio 1 +A 1 +sbwt none +sbwtdcpu none +sbwtdio none"


def bench_scaling_no_load(moto_url: str, work: Path, store: str, sizes: list[int], server_pid: int,
                          host_erl_flags: str = "") -> list[dict]:
    """Large fleets without the load client (which cannot load 128 hosts on 2
    cores): for each size, ours (all at once: canary 0, one wave, max_parallel
    the size) and the `xargs -P` loop, each on a fresh fleet on v1, v1 -> v2,
    its nodes started with HOST_ERL_FLAGS (ERL_AFLAGS) if given.
    Per row: both wall times, our fixed cost (flow start to first host task,
    last host task to flow end, as the server recorded them), and per host:
    deployer CPU, Prefect server CPU, the hosts' CPU. Beside ours, Prefect's
    floor measured the same way on the same server (benchmarks/floor_once.py:
    a task run per host doing nothing but wait): what no flow with a task
    run per host goes under."""
    from flows.release import release
    from hotdeploy import layout
    from localfleet.services import rss_kb
    from prefect_aws import S3Bucket
    from tasks.store import download
    v1 = release(app_dir=str(checkout("v1", work)), store_block=store)["version"]
    v2 = release(app_dir=str(checkout("v2", work)), store_block=store)["version"]
    tarball = download(S3Bucket.load(store), layout.tarball_key(APP, v2), work / "noload-v2.tar.gz")
    hosts_env = {"service_environment": f"ERL_AFLAGS={host_erl_flags}"} if host_erl_flags else {}
    rows = []
    for n in sizes:
        row: dict = {"hosts": n, "host_erl_flags": host_erl_flags}
        log(f"no load: {n} host(s), ours")
        fleet = fresh_fleet(f"bn{n}o", n, 10, moto_url, store, v1, max_parallel=n, **hosts_env)
        try:
            host0, server0 = host_cpu_s(fleet), tree_cpu_s(server_pid)
            deployed = deploy_in_own_process(fleet, v2, store)
            row.update({"ours_s": deployed["seconds"], "fixed_cost_s": deployed["fixed_cost_s"],
                        "fixed_head_s": deployed.get("head_s"), "fixed_tail_s": deployed.get("tail_s"),
                        "deployer_cpu_s_per_host": round(deployed["cpu_s"] / n, 4),
                        "server_cpu_s_per_host": round((tree_cpu_s(server_pid) - server0) / n, 4),
                        "host_cpu_s_per_host": round((host_cpu_s(fleet) - host0) / n, 3),
                        "deployer_peak_rss_mb": round(deployed["peak_rss_kb"] / 1024, 1),
                        "prefect_server_rss_mb": round(rss_kb(server_pid, "VmRSS") / 1024, 1),
                        "results": sorted({r["result"] for r in deployed["rows"]})})
        finally:
            fleet.stop()
        log(f"no load: {n} host(s), Prefect's floor (a task run per host, nothing else)")
        server0 = tree_cpu_s(server_pid)
        floor = flow_in_own_process("benchmarks.floor_once", str(n), str(FLOOR_TASK_S))
        row.update({"prefect_floor_s": floor["seconds"], "prefect_floor_fixed_cost_s": floor["fixed_cost_s"],
                    "prefect_floor_fixed_head_s": floor.get("head_s"),
                    "prefect_floor_fixed_tail_s": floor.get("tail_s"),
                    "prefect_floor_deployer_cpu_s_per_host": round(floor["cpu_s"] / n, 4),
                    "prefect_floor_server_cpu_s_per_host": round((tree_cpu_s(server_pid) - server0) / n, 4)})
        log(f"no load: {n} host(s), xargs -P {n}")
        fleet = fresh_fleet(f"bn{n}x", n, 10, moto_url, store, v1, **hosts_env)
        try:
            host0 = host_cpu_s(fleet)
            row["xargs_parallel_s"] = round(shell_upgrade(fleet, v2, tarball, parallel=n), 3)
            row["xargs_parallel_host_cpu_s_per_host"] = round((host_cpu_s(fleet) - host0) / n, 3)
        finally:
            fleet.stop()
        row["ours_vs_xargs"] = round(row["ours_s"] / row["xargs_parallel_s"], 3)
        log(f"no load: {n} host(s): ours {row['ours_s']} s (fixed {row['fixed_cost_s']} s: "
            f"{row['fixed_head_s']} before the first host, {row['fixed_tail_s']} after the last), "
            f"xargs -P {row['xargs_parallel_s']} s")
        rows.append(row)
    by_size = {r["hosts"]: r for r in rows}
    for r in rows:
        r["ours_vs_1host"] = round(r["ours_s"] / by_size[1]["ours_s"], 2) if 1 in by_size else None
        r["ours_vs_16hosts"] = round(r["ours_s"] / by_size[16]["ours_s"], 2) if 16 in by_size else None
    return rows


def _no_load_lines(rows: list[dict]) -> str:
    lines = ["### Fleet scaling without load (`--no-load`)", "",
             "| hosts | ours (s) | xargs -P (s) | ours / xargs | vs 1 host | vs 16 hosts | fixed cost (s): head + tail "
             "| deployer CPU/host (s) | server CPU/host (s) | host CPU/host: ours, xargs (s) | deployer peak RSS (MB) "
             "| Prefect's floor: fixed cost (s), deployer CPU/host, server CPU/host (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    flags = {r.get("host_erl_flags") for r in rows} - {None, ""}
    if flags:
        lines[0] += f" (hosts started with ERL_AFLAGS=`{', '.join(flags)}`)"
    for r in rows:
        lines.append(f"| {r['hosts']} | {r['ours_s']:.2f} | {r['xargs_parallel_s']:.2f} | {r['ours_vs_xargs']} "
                     f"| {r['ours_vs_1host']} | {r['ours_vs_16hosts']} | {r['fixed_cost_s']} "
                     f"({r.get('fixed_head_s')} + {r.get('fixed_tail_s')}) "
                     f"| {r['deployer_cpu_s_per_host']} | {r['server_cpu_s_per_host']} "
                     f"| {r['host_cpu_s_per_host']}, {r['xargs_parallel_host_cpu_s_per_host']} "
                     f"| {r['deployer_peak_rss_mb']} "
                     f"| {r.get('prefect_floor_fixed_cost_s')}, {r.get('prefect_floor_deployer_cpu_s_per_host')}, "
                     f"{r.get('prefect_floor_server_cpu_s_per_host')} |")
    return "\n".join(lines)


def bench_restart(moto_url: str, work: Path, store: str, n: int) -> dict:
    """v1 -> v2 on N hosts by a rolling restart: ours (hot_deploy
    strategy=restart, the environment's canary and waves of 25 %: never more
    than a wave down) beside an `xargs -P` loop of stop, unpack, start (every
    host at once), each on a fresh fleet on v1 under the same load."""
    from flows.release import release
    from hotdeploy import layout
    from prefect_aws import S3Bucket
    from tasks.store import download
    v1 = release(app_dir=str(checkout("v1", work)), store_block=store)["version"]
    v2 = release(app_dir=str(checkout("v2", work)), store_block=store)["version"]
    tarball = download(S3Bucket.load(store), layout.tarball_key(APP, v2), work / "restart-v2.tar.gz")
    row: dict = {"hosts": n, "pair": "v1 -> v2, strategy restart"}
    log(f"restart: {n} host(s), ours (canary 1, waves of 25%), under load")
    fleet = fresh_fleet("brso", n, 10, moto_url, store, v1, canary=1, wave_size="25%")
    try:
        with Load(fleet.addresses) as load:
            deployed = deploy_in_own_process(fleet, v2, store, "restart")
        downs = [r["down_seconds"] for r in deployed["rows"] if r.get("down_seconds") is not None]
        row.update({"ours_s": deployed["seconds"], "ours_load": load.result["summary"],
                    "ours_results": sorted({r["result"] for r in deployed["rows"]}),
                    "ours_down_p50_s": pct(downs, 50), "ours_down_max_s": max(downs, default=0)})
    finally:
        fleet.stop()
    log(f"restart: {n} host(s), xargs -P loop of stop, unpack, start, under load")
    fleet = fresh_fleet("brsx", n, 10 + n, moto_url, store, v1)
    try:
        with Load(fleet.addresses) as load:
            row["xargs_s"] = round(shell_upgrade(fleet, v2, tarball, parallel=n, script="restart_host.sh"), 3)
        row["xargs_load"] = load.result["summary"]
    finally:
        fleet.stop()
    return row


# (figure, fleet size or None for every size, how it is computed from a scaling
# row and the 1-host row, target: lower is better). The stage ratios are given
# under the load client (which alone saturates the 2 cores at 16+ hosts) and
# without it.
TARGETS = [
    ("upgrade stage / xargs -P loop, 16 hosts", 16, lambda r, one: r["ours_s"] / r["xargs_parallel_s"], 0.5),
    ("upgrade stage / xargs -P loop, 32 hosts", 32, lambda r, one: r["ours_s"] / r["xargs_parallel_s"], 0.5),
    ("upgrade stage 16 hosts / ours at 1 host", 16, lambda r, one: r["ours_s"] / one["ours_s"], 1.5),
    ("no load: upgrade stage / xargs -P loop, 16 hosts", 16,
     lambda r, one: r["ours_no_load_s"] / r["xargs_parallel_no_load_s"], 0.5),
    ("no load: upgrade stage / xargs -P loop, 32 hosts", 32,
     lambda r, one: r["ours_no_load_s"] / r["xargs_parallel_no_load_s"], 0.5),
    ("no load: upgrade stage 16 hosts / ours at 1 host", 16,
     lambda r, one: r["ours_no_load_s"] / one["ours_no_load_s"], 1.5),
    ("host CPU per host upgrade (s), every size", None, lambda r, one: r["host_cpu_s_per_host"], 0.2),
    ("per-host wall time without the soak, median at 1 host (s)", 1,
     lambda r, one: r["per_host_no_soak_p50_s"], 0.5),
    ("deployer peak RSS at 32 hosts (MB)", 32, lambda r, one: r["deployer_peak_rss_mb"], 250),
    ("failed requests during the upgrade, every size", None, lambda r, one: r["load_during_upgrade"]["failed"], 0),
    ("p99 during the upgrade / same load without, every size", None,
     lambda r, one: r["load_during_upgrade"]["p99_ms"] / max(r["load_without_upgrade"]["p99_ms"], 0.001), 2.0),
]


# The two ways to run a deployment from a shell or CI, timed alike: Prefect's
# CLI, and ours (which also prints the run's report).
RUN_COMMANDS = {
    "watch": lambda name: [sys.executable, "-m", "prefect", "deployment", "run", name, "--watch"],
    "run": lambda name: [sys.executable, "-m", "deployments.run", name],
}


def _shell_run(how: str, name: str) -> tuple[float, str, str]:
    """A deployment run from the shell, as CI runs it, the RUN_COMMANDS[HOW]
    way: (wall seconds, the run's id, its final state type)."""
    t0 = time.monotonic()
    done = subprocess.run(RUN_COMMANDS[how](name), cwd=ROOT, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    run_id = re.search(r"UUID: ([0-9a-f-]{36})|\(([0-9a-f-]{36})\) started", done.stdout)
    final = "COMPLETED" if done.returncode == 0 else "FAILED"
    return wall, next(g for g in run_id.groups() if g) if run_id else "", final


def _run_seconds(run_id: str) -> dict:
    """What the server says of a flow run: from its creation to its start
    (the worker's poll and the process start), and its own run time."""
    import asyncio
    from uuid import UUID

    from prefect.client.orchestration import get_client

    async def read() -> dict:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(run_id))
            return {"queued_s": round((run.start_time - run.created).total_seconds(), 2) if run.start_time else None,
                    "flow_s": round(run.total_run_time.total_seconds(), 2)}
    return asyncio.run(read())


# The two workers a deployment's runs can start on, each a contender: the
# README's (our warm worker) and Prefect's own process worker, the baseline.
WORKERS = {
    "warm": lambda pool: [sys.executable, "-m", "deployments.worker", "--pool", pool],
    "plain": lambda pool: [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
}
WORKER_NAMES = {"warm": "python -m deployments.worker", "plain": "prefect worker start --type process"}


def _idle_worker(kind: str, pool: str, log_path: Path) -> subprocess.Popen:
    """A worker of KIND on POOL, up and idle (its engine server ready, if it
    has one), as CI finds it."""
    worker = subprocess.Popen(WORKERS[kind](pool), cwd=ROOT, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                              start_new_session=True, env={**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1"})
    deadline = time.monotonic() + 120
    while kind == "warm" and "ready on" not in log_path.read_text():
        assert worker.poll() is None and time.monotonic() < deadline, f"the warm worker never got ready: {log_path}"
        time.sleep(0.2)
    time.sleep(5)     # polling, idle
    return worker


def _stop(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:    # a busy machine: a worker may take longer to wind down
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def bench_deployment_run(moto_url: str, work: Path, store: str, repeats: int = 3) -> dict:
    """The wall time of a deployment run from the shell (`prefect deployment
    run ... --watch`, and `python -m deployments.run`) on an idle worker
    polling every second, for a `status` run and a known refusal (hot-deploy
    of a version that is not published), each REPEATS times, on each worker
    of WORKERS (each started fresh, runs one after the other); beside it the
    same flow called in a warm Python process (the floor: the flow's own
    work) and the target. Keys without a worker prefix are the README's
    (warm) worker's."""
    import asyncio

    from prefect import Flow

    from deployments.apply import ensure_pool
    from flows.release import release
    from flows.status import status
    v1 = release(app_dir=str(checkout("v1", work)), store_block=store)["version"]
    fleet = fresh_fleet("bdrn", 1, 10, moto_url, store, v1)
    pool = "bench-runs"
    asyncio.run(ensure_pool(pool))
    common = dict(work_pool_name=pool, print_next_steps=False, ignore_warnings=True)
    Flow.from_source(source=str(ROOT), entrypoint="flows/status.py:status").deploy(
        name="bench", parameters=dict(app=APP, environment=fleet.name, store_block=store), **common)
    Flow.from_source(source=str(ROOT), entrypoint="flows/deploy.py:hot_deploy").deploy(
        name="bench-refused", parameters=dict(app=APP, environment=fleet.name, version="9.9.9", store_block=store),
        **common)
    row: dict = {"target_s": 5.0, "repeats": repeats, "workers": list(WORKERS), "commit": _commit(),
                 "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        for kind in WORKERS:
            prefix = "" if kind == "warm" else f"{kind}_"
            worker = _idle_worker(kind, pool, work / f"bench-worker-{kind}.log")
            try:
                for key, name, wanted in (("status", "status/bench", "COMPLETED"),
                                          ("refusal", "hot-deploy/bench-refused", "FAILED")):
                    for how in RUN_COMMANDS:      # one after the other, each from an idle worker
                        walls, server = [], []
                        for _ in range(repeats):
                            wall, run_id, final = _shell_run(how, name)
                            assert final == wanted, f"{name} ({how}, {kind} worker) ended {final}, expected {wanted}"
                            walls.append(wall)
                            server.append(_run_seconds(run_id) if run_id else {})
                        k = f"{prefix}{key}_{how}"
                        row[f"{k}_s"] = round(statistics.median(walls), 2)
                        row[f"{k}_all_s"] = [round(w, 2) for w in walls]
                        row[f"{k}_queued_s"] = statistics.median(s.get("queued_s") or 0 for s in server)
                        row[f"{k}_flow_s"] = statistics.median(s.get("flow_s") or 0 for s in server)
                        log(f"{kind} worker: {' '.join(RUN_COMMANDS[how](name)[2:])}: {row[f'{k}_s']} s median of "
                            f"{row[f'{k}_all_s']} (created to started {row[f'{k}_queued_s']} s, "
                            f"flow {row[f'{k}_flow_s']} s; target <= 5 s)")
            finally:
                _stop(worker)
        t0 = time.monotonic()
        status(app=APP, environment=fleet.name, store_block=store)
        row["status_in_process_s"] = round(time.monotonic() - t0, 2)
        log(f"status called in a warm process (the floor): {row['status_in_process_s']} s")
    finally:
        fleet.stop()
    return row


def _deployment_run_lines(r: dict) -> str:
    def met(x: float) -> str:
        return "yes" if x <= r["target_s"] else "**MISSED**"
    commands = {"watch": "prefect deployment run NAME --watch", "run": "python -m deployments.run NAME"}
    workers = r.get("workers", ["warm"])
    return "\n".join([
        "### A deployment run from the shell (idle worker)", "",
        "| run | worker | command | wall (s), median | each (s) | created to started (s) | flow (s) | target (s) "
        "| met |",
        "|---|---|---|---|---|---|---|---|---|",
        *(f"| {k} | `{WORKER_NAMES[w]}` | `{commands[how]}` | {r[f'{p}{k}_{how}_s']} | {r[f'{p}{k}_{how}_all_s']} "
          f"| {r[f'{p}{k}_{how}_queued_s']} | {r[f'{p}{k}_{how}_flow_s']} | <= {r['target_s']} "
          f"| {met(r[f'{p}{k}_{how}_s'])} |"
          for k in ("status", "refusal") for w in workers for p in ["" if w == "warm" else f"{w}_"]
          for how in commands),
        f"| status called in a warm process (the floor) | | | {r['status_in_process_s']} | | | | | |",
        "", f"Measured on commit {r.get('commit')}, {r.get('when')}."])


def against_targets(scaling: list[dict]) -> list[dict]:
    """Each target with what was measured; a size not run is said so, a miss is reported."""
    one = next((r for r in scaling if r["hosts"] == 1), scaling[0])
    out = []
    for name, size, figure, target in TARGETS:
        rows = [r for r in scaling if size is None or r["hosts"] == size]
        if not rows:
            out.append({"figure": name, "measured": None, "target": target, "met": None})
            continue
        values = [round(figure(r, one), 3) for r in rows]
        worst = max(values)
        out.append({"figure": name, "measured": worst if len(values) == 1 else values, "target": target,
                    "met": worst <= target})
    return out


def results_text(results: dict) -> str:
    """results.json: indented, except each row of a latency timeline on one
    line, so the file stays readable and small (every number on a line of
    its own made it 0.5-1.2 MB)."""
    def compact_rows(value):
        if isinstance(value, dict):
            return {k: compact_rows(v) for k, v in value.items()}
        if isinstance(value, list):
            if value and all(isinstance(v, (list, tuple)) for v in value):
                return [json.dumps(v, separators=(",", ":")) for v in value]
            return [compact_rows(v) for v in value]
        return value
    text = json.dumps(compact_rows(results), indent=1)
    text = re.sub(r'"(\[[^"\]]*\])"', r"\1", text)   # the rows, back from strings to JSON arrays
    assert json.loads(text) == json.loads(json.dumps(results))
    return text


def update_results(out: Path, part: dict) -> dict:
    """Merge PART (a part run alone: --no-load, --only) into OUT/results.json,
    keeping the other parts' figures."""
    out.mkdir(parents=True, exist_ok=True)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    results.update(part)
    (out / "results.json").write_text(results_text(results))
    return results


def _commit() -> str | None:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip() or None


def write_outputs(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(results_text(results))
    lines = [f"Measured {results['when']} on {results['machine']}, commit {results.get('commit')}.", ""]
    if results.get("pipeline"):
        p = results["pipeline"]
        ex = p.get("ours_elixir") or {}
        lines += ["### Pipeline (ship, 3 hosts, warm builder image)", "",
                  "| step | ours (s) | baseline script (s) | ours / baseline | ours, Elixir example (s) |",
                  "|---|---|---|---|---|"]
        for k in p["ours"]:
            o, b = p["ours"][k], p["baseline"][k]
            e = f"{ex[k]:.2f}" if k in ex else "-"
            lines.append(f"| {k} | {o:.2f} | {b:.2f} | {o / b:.2f} | {e} |" if b else
                         f"| {k} | {o:.2f} | {b:.2f} | - | {e} |")
        lines.append("")
    lines += ["### Against the targets", "", "| figure | measured | target | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        met = "not run" if t["met"] is None else ("yes" if t["met"] else "**MISSED**")
        lines.append(f"| {t['figure']} | {t['measured']} | <= {t['target']} | {met} |")
    lines += ["", "### Fleet scaling (upgrade stage, each contender from a fresh fleet on v1, same load) and cost",
              "", "| hosts | ours (s) | sequential ssh (s) | xargs -P (s) | no load: ours, seq, xargs (s) "
              "| ours vs 1 host | host CPU/host, no load: ours, seq, xargs (s) | per-host p50/p95 (s) "
              "| sent/host (KB) | deployer peak RSS (MB) | Prefect server RSS (MB) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["scaling"]:
        lines.append(f"| {r['hosts']} | {r['ours_s']:.2f} | {r['sequential_ssh_s']:.2f} | {r['xargs_parallel_s']:.2f} "
                     f"| {r['ours_no_load_s']:.2f}, {r['sequential_ssh_no_load_s']:.2f}, "
                     f"{r['xargs_parallel_no_load_s']:.2f} "
                     f"| {r['ours_vs_1host']} | {r['host_cpu_s_per_host']}, "
                     f"{r['sequential_ssh_host_cpu_s_per_host']}, {r['xargs_parallel_host_cpu_s_per_host']} "
                     f"| {r['per_host_p50_s']}/{r['per_host_p95_s']} | {r['sent_kb_per_host']} "
                     f"| {r['deployer_peak_rss_mb']} | {r['prefect_server_rss_mb']} |")
    if results.get("restart"):
        r = results["restart"]
        lines += ["", f"### Restart deploy ({r['hosts']} hosts, {r['pair']}, same load, each from a fresh fleet on v1)",
                  "", "| contender | time (s) | requests sent / failed | host down p50 / max (s) |", "|---|---|---|---|",
                  f"| ours (canary, waves of 25 %, gate) | {r['ours_s']:.2f} | {r['ours_load']['sent']} / "
                  f"{r['ours_load']['failed']} | {r['ours_down_p50_s']} / {r['ours_down_max_s']} |",
                  f"| xargs -P: stop, unpack, start (all at once) | {r['xargs_s']:.2f} | {r['xargs_load']['sent']} / "
                  f"{r['xargs_load']['failed']} | - |"]
    if results.get("deployment_run"):
        lines += ["", _deployment_run_lines(results["deployment_run"])]
    if results.get("scaling_no_load"):
        lines += ["", _no_load_lines(results["scaling_no_load"]), "",
                  f"Measured on commit {results.get('scaling_no_load_commit')}, {results.get('scaling_no_load_when')}, "
                  "without the load client (`--no-load`, a run of its own; kept by the full run)."]
    lines += ["", "### Availability (load client, 1 keep-alive connection per host)", "",
              "| hosts | during upgrade: sent / failed / p50 / p99 / max ms | same load, no upgrade |",
              "|---|---|---|"]
    for r in results["scaling"]:
        d, q = r["load_during_upgrade"], r["load_without_upgrade"]
        lines.append(f"| {r['hosts']} | {d['sent']} / {d['failed']} / {d['p50_ms']} / {d['p99_ms']} / {d['max_ms']} "
                     f"| {q['sent']} / {q['failed']} / {q['p50_ms']} / {q['p99_ms']} / {q['max_ms']} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plots (pip install matplotlib)")
        return
    s = results["scaling"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("ours_s", "hotdeploy (hot_deploy flow)"), ("sequential_ssh_s", "sequential ssh loop"),
                       ("xargs_parallel_s", "xargs -P ssh loop")):
        ax.plot([r["hosts"] for r in s], [r[key] for r in s], marker="o", label=label)
    ax.set_xlabel("hosts")
    ax.set_ylabel("upgrade stage (s)")
    ax.set_xscale("log", base=2)
    ax.legend()
    ax.set_title("Fleet size vs upgrade-stage time")
    fig.tight_layout()
    fig.savefig(out / "fleet_scaling.png", dpi=100)
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in s:
        pts = r["latency_timeline"]
        ax.plot([t for t, _ in pts], [l for _, l in pts], ".", markersize=2, label=f"{r['hosts']} host(s)")
    ax.set_xlabel("seconds since the load started (the deploy runs inside this window)")
    ax.set_ylabel("request latency (ms)")
    ax.set_title("Latency during the hot upgrade")
    ax.legend(markerscale=5)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run")
    p.add_argument("--sizes", default="1,4,16,32")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    p.add_argument("--skip-pipeline", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="every part once, at its least (no Elixir ship, one run of each deployment run): what "
                        "the test suite runs to keep the benchmark working, not figures to publish")
    p.add_argument("--no-load", action="store_true",
                   help="fleet scaling alone, without the load client (it cannot load 128 hosts on 2 cores), "
                        "ours beside xargs -P at each of --sizes; in results.json as scaling_no_load")
    p.add_argument("--light-hosts", action="store_true",
                   help=f"with --no-load: every contender's nodes start with ERL_AFLAGS={LIGHT_HOST_ERL_FLAGS!r}")
    p.add_argument("--only", choices=["deployment-run"],
                   help="run one part alone (its results in results.json; the figures of the other parts stay "
                        "as they were)")
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    for script in ("ensure-dockerd.sh", "base-image.sh"):
        subprocess.run(["bash", str(ROOT / "scripts" / script)], check=True)
    work = Path(tempfile.mkdtemp(prefix="hotdeploy-bench-"))
    server, api, moto, moto_url = start_services(work)
    try:
        from blocks.local import create_store
        results = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
                              f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
                              f"{platform.platform()}"}
        if args.no_load:
            create_store(moto_url, bucket="bench-noload", name="bench-noload")
            rows = bench_scaling_no_load(moto_url, work, "bench-noload", sizes, server.pid,
                                         LIGHT_HOST_ERL_FLAGS if args.light_hosts else "")
            update_results(Path(args.out), {"scaling_no_load": rows, "scaling_no_load_when": results["when"],
                                            "scaling_no_load_commit": _commit()})
            print(_no_load_lines(rows))
            return 0
        if args.only == "deployment-run":
            create_store(moto_url, bucket="bench-runs", name="bench-runs")
            row = bench_deployment_run(moto_url, work, "bench-runs")
            update_results(Path(args.out), {"deployment_run": row})
            print(_deployment_run_lines(row))
            return 0
        create_store(moto_url, bucket="bench-pipeline", name="bench-pipeline")
        results["pipeline"] = None if args.skip_pipeline else bench_pipeline(moto_url, work, "bench-pipeline",
                                                                            elixir=not args.quick)
        create_store(moto_url, bucket="bench-scaling", name="bench-scaling")
        results["scaling"] = bench_scaling(moto_url, work, "bench-scaling", sizes, server.pid)
        create_store(moto_url, bucket="bench-restart", name="bench-restart")
        results["restart"] = bench_restart(moto_url, work, "bench-restart", min(max(sizes), 16))
        create_store(moto_url, bucket="bench-runs", name="bench-runs")
        results["deployment_run"] = bench_deployment_run(moto_url, work, "bench-runs", repeats=1 if args.quick else 3)
        results["targets"] = against_targets(results["scaling"])
        results["commit"] = _commit()
        kept = Path(args.out) / "results.json"       # the --no-load part is a run of its own
        if kept.exists():
            results.update({k: v for k, v in json.loads(kept.read_text()).items() if k.startswith("scaling_no_load")})
        write_outputs(results, Path(args.out))
        return 0
    finally:
        from localfleet.fleet import remove_bridge
        remove_bridge()
        moto.stop()
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    sys.exit(main())
