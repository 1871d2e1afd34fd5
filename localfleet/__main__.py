"""Run local fleets until stopped:
`python -m localfleet serve --moto-url URL --state FILE [--fleet staging:2 --fleet production:2 ...]`.

Each --fleet ENVIRONMENT:SIZE is SIZE namespace hosts registered as EC2
instances in moto (tags Environment=ENVIRONMENT, Role=web) with a security
group and deployer key of its own, nftables kept in step with that group.
The hosts take consecutive addresses from --first. Writes what a
DeployEnvironment needs per environment to STATE (JSON) and tears
everything down on SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

import boto3

from .ec2 import register
from .fleet import Fleet, GroupEnforcer, remove_bridge


def parse_fleets(specs: list[str]) -> list[tuple[str, int]]:
    """["staging:2", "production"] -> [("staging", 2), ("production", 1)]."""
    out = []
    for spec in specs:
        name, _, size = spec.partition(":")
        if not name.isidentifier() or (size and not size.isdigit()) or (size and int(size) < 1):
            raise SystemExit(f"--fleet {spec!r}: expected ENVIRONMENT[:SIZE], e.g. staging:2")
        out.append((name, int(size or 1)))
    if len({n for n, _ in out}) != len(out):
        raise SystemExit("--fleet: each environment once")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m localfleet", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Local fleets of test hosts until stopped (Ctrl-C or SIGTERM tears them down): each host a "
                    "network namespace on a bridge with its own sshd (key-only, strict host keys), registered "
                    "as an EC2 instance in moto, its security group enforced by nftables.",
        epilog="example:\n  python -m localfleet serve --moto-url http://127.0.0.1:5000 --state fleet.json \\\n"
               "      --fleet staging:2 --fleet production:3 --first 100\n"
               "then: python -m blocks.local --moto-url http://127.0.0.1:5000 --fleet fleet.json\n"
               "Needs root (namespaces, nftables). Addresses are 198.18.0.FIRST and up.")
    p.add_argument("command", choices=["serve"], help="serve: make the fleets and keep them until stopped")
    p.add_argument("--name", default="demo", help="prefix of the hosts' names (default: demo)")
    p.add_argument("--fleet", action="append", metavar="ENVIRONMENT:SIZE",
                   help="a fleet for ENVIRONMENT (repeat for several; default staging:3)")
    p.add_argument("--first", type=int, default=100,
                   help="last octet of the first host's address in 198.18.0.0/24 (default: 100); the hosts of "
                        "every fleet take consecutive addresses from it")
    p.add_argument("--moto-url", required=True, help="moto's server (S3 and EC2), e.g. http://127.0.0.1:5000")
    p.add_argument("--state", required=True,
                   help="where to write the fleets' description (JSON: per environment its hosts, security "
                        "group, deployer key and known_hosts), read by python -m blocks.local")
    args = p.parse_args(argv)
    wanted = parse_fleets(args.fleet or ["staging:3"])

    ec2 = boto3.client("ec2", endpoint_url=args.moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    fleets, enforcers = [], []
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        first, state = args.first, {}
        for environment, size in wanted:
            fleet = Fleet(f"{args.name}-{environment}", size, first=first)
            fleets.append(fleet)
            first += size
            fleet.start()
            ec2_fleet = register(ec2, fleet.hosts, environment=environment)
            enforcers.append(GroupEnforcer(ec2, ec2_fleet.group_id, fleet.hosts))
            enforcers[-1].start()
            state[environment] = {
                "environment": environment, "security_group_id": ec2_fleet.group_id,
                "deployer_key": str(fleet.deployer_key), "known_hosts": fleet.known_hosts(),
                "hosts": [{"name": h.name, "address": h.address, "netns": h.name} for h in fleet.hosts]}
            print(f"fleet {environment}: {', '.join(h.address for h in fleet.hosts)} (group {ec2_fleet.group_id})",
                  flush=True)
        Path(args.state).write_text(json.dumps({"environments": state}, indent=2))
        done.wait()
    finally:
        for enforcer in enforcers:
            enforcer.stop()
        for fleet in fleets:
            fleet.stop()
        remove_bridge()
        Path(args.state).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
