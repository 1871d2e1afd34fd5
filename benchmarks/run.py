"""Benchmarks, each beside a baseline measured in the same run:
python -m benchmarks.run [--sizes 1,4,16,32] [--out benchmarks/out]

1. pipeline: each step of `ship` (release + hot_deploy, 3 hosts, warm
   builder image) vs the seed-style shell script (baseline_ship.sh);
2. fleet scaling: the upgrade stage for each fleet size, ours vs a
   sequential ssh loop and an `xargs -P` loop of upgrade_host.sh;
3. availability: a steady load client during our upgrade vs the same load
   with no upgrade;
4. cost: peak memory of the deploying process (its own process, wait4),
   Prefect server memory, per-host upgrade time p50/p95, per fleet size.

Writes OUT/results.json, OUT/results.md, OUT/fleet_scaling.png and
OUT/latency.png. Nothing here is asserted: it measures and prints.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "example_app"


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


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


def checkout(version: str, work: Path) -> Path:
    dest = Path(tempfile.mkdtemp(prefix=f"{version}-", dir=work))
    subprocess.run([str(ROOT / "examples" / "checkout-version"), version, str(dest)], check=True)
    return dest


class Fleet:
    """A local fleet registered in moto, with its environment block."""

    def __init__(self, name: str, size: int, first: int, moto_url: str):
        from localfleet.fleet import Fleet as NsFleet
        self.ns = NsFleet(name, size, first=first)
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
                                      "known_hosts": self.ns.known_hosts()}, name, max_parallel=32,
                           health_soak_seconds=1.0)

    @property
    def addresses(self) -> list[str]:
        return [h.address for h in self.ns.hosts]

    def ingress(self, action: str) -> None:
        getattr(self.ec2, f"{action}_security_group_ingress")(GroupId=self.group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.18.0.1/32"}]}])
        time.sleep(0.3)  # the enforcer polls every 0.1 s

    def stop(self) -> None:
        self.enforcer.stop()
        self.ns.stop()


def shell_upgrade(fleet: Fleet, vsn: str, tarball: Path, parallel: int, action: str = "upgrade") -> float:
    env = {**os.environ, "KEY": str(fleet.ns.deployer_key), "KNOWN_HOSTS": str(fleet.known_hosts),
           "ROOT": f"/srv/{APP}", "REL": APP, "ACTION": action}
    start = time.monotonic()
    subprocess.run(["xargs", "-P", str(parallel), "-I{}", "bash", str(ROOT / "benchmarks" / "upgrade_host.sh"),
                    "{}", vsn, str(tarball)], input="\n".join(fleet.addresses), text=True, env=env, check=True)
    return time.monotonic() - start


def deploy_in_own_process(fleet: Fleet, vsn: str, store: str) -> tuple[dict, int]:
    """hot_deploy in a child process: its wall time (measured inside) and peak RSS (wait4)."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.deploy_once", fleet.name, vsn, store],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"hot_deploy in a child process failed ({status}): {out[-2000:]}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 3) if xs else 0.0


def bench_pipeline(moto_url: str, work: Path, store: str) -> dict:
    from flows.provision import provision_host
    from flows.release import release
    from flows.ship import ship
    log("pipeline: 3 hosts on v1, then ship v2 (ours) and a v3 by the baseline script")
    v1 = release(app_dir=str(checkout("v1", work)), store_block=store)
    fleet = Fleet("bpipe", 3, 200, moto_url)
    try:
        provision_host(app=APP, environment=fleet.name, version=v1["version"], store_block=store)
        start = time.monotonic()
        shipped = ship(app_dir=str(checkout("v2", work)), environment=fleet.name, store_block=store)
        ship_total = time.monotonic() - start
        rel, rows = shipped["release"], shipped["deploy"]
        deploy_total = ship_total - sum(rel["timings"].values())
        ours = {"builder image": rel["timings"]["builder image"], "test": rel["timings"]["test"],
                "fetch previous": rel["timings"]["fetch previous"] + rel["timings"]["next version"],
                "build with relup": rel["timings"]["build with relup"], "verify": rel["timings"]["verify"],
                "publish": rel["timings"]["publish"],
                "per-host upgrade (max)": max(sum(r["seconds"].values()) for r in rows),
                "ingress, discovery, revoke, overhead": deploy_total - max(sum(r["seconds"].values()) for r in rows),
                "total": ship_total}
        from prefect_aws import S3Bucket
        bucket = S3Bucket.load(store).bucket_name
        env = {**os.environ, "WS": str(checkout("v3", work)), "IMAGE": rel["builder_image"],
               "BUCKET": bucket, "PY": sys.executable, "APP": APP, "VSN": "2099.1.1", "HOSTS": " ".join(fleet.addresses),
               "KEY": str(fleet.ns.deployer_key), "KNOWN_HOSTS": str(fleet.known_hosts), "ROOT": f"/srv/{APP}",
               "REL": APP, "MOTO": moto_url, "GROUP": fleet.group, "CIDR": "198.18.0.1/32"}
        start = time.monotonic()
        out = subprocess.run(["bash", str(ROOT / "benchmarks" / "baseline_ship.sh")], env=env, check=True,
                             capture_output=True, text=True).stdout
        base_total = time.monotonic() - start
        b = json.loads(out.strip().splitlines()[-1])
        baseline = {"builder image": 0.0, "test": b["test"], "fetch previous": b["fetch_previous"],
                    "build with relup": b["build"], "verify": b["verify"], "publish": b["publish"],
                    "per-host upgrade (max)": b["upgrade"],
                    "ingress, discovery, revoke, overhead": b["authorize"] + b["revoke"], "total": base_total}
        return {"hosts": 3, "ours": {k: round(v, 3) for k, v in ours.items()},
                "baseline": {k: round(v, 3) for k, v in baseline.items()}}
    finally:
        fleet.stop()


def bench_scaling(moto_url: str, work: Path, store: str, sizes: list[int], server_pid: int) -> list[dict]:
    from flows.provision import provision_host
    from flows.release import release
    from flows.rollback import rollback
    from tasks.probe import LoadClient
    from tasks.store import download
    from prefect_aws import S3Bucket
    from hotdeploy import layout
    v1 = release(app_dir=str(checkout("v1", work)), store_block=store)["version"]
    v2 = release(app_dir=str(checkout("v2", work)), store_block=store)["version"]
    tarball = download(S3Bucket.load(store), layout.tarball_key(APP, v2), work / "v2.tar.gz")
    results, first = [], 10
    for n in sizes:
        log(f"fleet scaling: {n} host(s)")
        fleet = Fleet(f"bs{n}", n, first, moto_url)
        first += n
        try:
            provision_host(app=APP, environment=fleet.name, version=v1, store_block=store)
            with LoadClient(fleet.addresses, connections=1, max_seconds=600) as load:
                deployed, peak_kb = deploy_in_own_process(fleet, v2, store)
            during = load.stats
            with LoadClient(fleet.addresses, connections=1, max_seconds=deployed["seconds"]) as idle:
                time.sleep(deployed["seconds"])
            quiet = idle.stats
            per_host = [sum(r["seconds"].values()) for r in deployed["rows"]]
            rollback(app=APP, environment=fleet.name, to_version=v1, store_block=store)
            fleet.ingress("authorize")
            try:
                sequential = shell_upgrade(fleet, v2, tarball, parallel=1)
                shell_upgrade(fleet, v1, tarball, parallel=n, action="downgrade")
                parallel = shell_upgrade(fleet, v2, tarball, parallel=n)
            finally:
                fleet.ingress("revoke")
            from localfleet.services import rss_kb
            results.append({
                "hosts": n, "ours_s": deployed["seconds"], "sequential_ssh_s": round(sequential, 3),
                "xargs_parallel_s": round(parallel, 3),
                "per_host_p50_s": pct(per_host, 50), "per_host_p95_s": pct(per_host, 95),
                "deployer_peak_rss_mb": round(peak_kb / 1024, 1),
                "prefect_server_rss_mb": round(rss_kb(server_pid, "VmRSS") / 1024, 1),
                "prefect_server_peak_mb": round(rss_kb(server_pid, "VmHWM") / 1024, 1),
                "load_during_upgrade": during.summary(), "load_without_upgrade": quiet.summary(),
                "latency_timeline": [(round(t, 3), round(l * 1000, 2)) for t, l in during.timeline[::10]],
            })
        finally:
            fleet.stop()
    base = results[0]
    for r in results:
        for k in ("ours_s", "sequential_ssh_s", "xargs_parallel_s"):
            r[k.replace("_s", "_vs_1host")] = round(r[k] / base[k], 2) if base[k] else None
    return results


def write_outputs(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    lines = [f"Measured {results['when']} on {results['machine']}.", ""]
    if results.get("pipeline"):
        p = results["pipeline"]
        lines += ["### Pipeline (ship, 3 hosts, warm builder image)", "",
                  "| step | ours (s) | baseline script (s) | ours / baseline |", "|---|---|---|---|"]
        for k in p["ours"]:
            o, b = p["ours"][k], p["baseline"][k]
            lines.append(f"| {k} | {o:.2f} | {b:.2f} | {o / b:.2f} |" if b else f"| {k} | {o:.2f} | {b:.2f} | - |")
        lines.append("")
    lines += ["### Fleet scaling (upgrade stage) and cost", "",
              "| hosts | ours (s) | sequential ssh (s) | xargs -P (s) | ours vs 1 host | per-host p50/p95 (s) "
              "| deployer peak RSS (MB) | Prefect server RSS (MB) |", "|---|---|---|---|---|---|---|---|"]
    for r in results["scaling"]:
        lines.append(f"| {r['hosts']} | {r['ours_s']:.2f} | {r['sequential_ssh_s']:.2f} | {r['xargs_parallel_s']:.2f} "
                     f"| {r['ours_vs_1host']} | {r['per_host_p50_s']}/{r['per_host_p95_s']} "
                     f"| {r['deployer_peak_rss_mb']} | {r['prefect_server_rss_mb']} |")
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
        create_store(moto_url, bucket="bench-pipeline", name="bench-pipeline")
        results["pipeline"] = None if args.skip_pipeline else bench_pipeline(moto_url, work, "bench-pipeline")
        create_store(moto_url, bucket="bench-scaling", name="bench-scaling")
        results["scaling"] = bench_scaling(moto_url, work, "bench-scaling", sizes, server.pid)
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
