"""The load client in a process of its own, so it competes with every
contender the same way and its threads never share a GIL with the deployer:
python -m benchmarks.load [--port P] [--connections C] [--max-seconds S] ADDRESS...
Prints `ready`, hammers until its stdin closes (or S passes), then prints one
JSON line: the summary and a thinned latency timeline."""
from __future__ import annotations

import argparse
import json
import sys

from tasks.probe import LoadClient


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("addresses", nargs="+")
    args = p.parse_args()
    with LoadClient(args.addresses, port=args.port, connections=args.connections,
                    max_seconds=args.max_seconds, interval=0) as load:   # back to back: capacity
        print("ready", flush=True)
        sys.stdin.read()            # until the harness closes it
    stats = load.stats
    print(json.dumps({"summary": stats.summary(),
                      "timeline": [(round(t, 3), round(lat * 1000, 2)) for t, lat in stats.timeline[::10]]}))


if __name__ == "__main__":
    main()
