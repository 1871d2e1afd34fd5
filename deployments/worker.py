"""A Prefect process worker whose flow runs start warm.

  python -m deployments.worker --pool hotdeploy [--name NAME] [--limit N]

is `prefect worker start --pool hotdeploy --type process` (the same pool,
the same runs, the same logs; it polls every second unless
PREFECT_WORKER_QUERY_SECONDS says otherwise) with one difference: each flow
run's engine is forked from an engine server this worker keeps (see
deployments/warm.py) instead of a new Python process that imports Prefect,
boto3, paramiko and the AWS and Docker collections again. A deployment run
then starts in about a second after the worker picks it up. A pool's or
deployment's own `command` job variable is left as it is.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

WARM = Path(__file__).resolve().with_name("warm.py")
SERVER_START_S = 60.0     # imports on a busy machine; runs meanwhile start cold
WATCH_S = 2.0             # how often the worker checks that its engine server lives


def client_command(socket_path: str) -> str:
    """The command a flow run's process runs: the warm client."""
    from prefect.utilities.processutils import command_to_string
    return command_to_string([sys.executable, str(WARM), socket_path])


def start_engine_server(socket_path: str) -> subprocess.Popen:
    """The engine server, in this worker's process group (a service manager
    stopping the worker stops it) and ending with it in any case."""
    server = subprocess.Popen([sys.executable, str(WARM), "--serve", socket_path])
    deadline = time.monotonic() + SERVER_START_S
    while not os.path.exists(socket_path) and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return server


class EngineServer:
    """The engine server, started again if it dies (runs meanwhile start
    cold: the client finds no server), until stop()."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self.process = start_engine_server(socket_path)
        self.stopped = threading.Event()
        self.watch = threading.Thread(target=self._keep, name="engine-server-watch", daemon=True)
        self.watch.start()

    def _keep(self) -> None:
        while not self.stopped.wait(WATCH_S):
            if self.process.poll() is not None and not self.stopped.is_set():
                print(f"hotdeploy engine server: exited with {self.process.returncode}; starting it again",
                      file=sys.stderr, flush=True)
                self.process = start_engine_server(self.socket_path)

    def stop(self) -> None:
        self.stopped.set()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def warm_worker_class(socket_path: str):
    from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

    class WarmJobConfiguration(ProcessJobConfiguration):
        def prepare_for_flow_run(self, *args, **kwargs) -> None:
            super().prepare_for_flow_run(*args, **kwargs)
            if not self._command_configured:
                self.command = client_command(socket_path)
                self._command_configured = True

    with warnings.catch_warnings():     # it takes the "process" type's place in this process: meant
        warnings.simplefilter("ignore", UserWarning)

        class WarmProcessWorker(ProcessWorker):
            job_configuration = WarmJobConfiguration

    return WarmProcessWorker


async def _work(args: argparse.Namespace, worker_class) -> None:
    from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS, PREFECT_WORKER_PREFETCH_SECONDS
    worker = worker_class(name=args.name, work_pool_name=args.pool, limit=args.limit,
                          prefetch_seconds=PREFECT_WORKER_PREFETCH_SECONDS.value(),
                          heartbeat_interval_seconds=int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()))
    await worker.start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deployments.worker", description=__doc__.splitlines()[0])
    p.add_argument("--pool", required=True, help="the process work pool (deployments.apply made it)")
    p.add_argument("--name", help="the worker's name (default: Prefect's)")
    p.add_argument("--limit", type=int, help="at most this many flow runs at once")
    args = p.parse_args(argv)
    os.environ.setdefault("PREFECT_WORKER_QUERY_SECONDS", "1")   # before prefect reads its settings
    with tempfile.TemporaryDirectory(prefix="hotdeploy-worker-") as tmp:
        socket_path = os.path.join(tmp, "engine.sock")
        server = EngineServer(socket_path)
        try:
            from prefect.utilities.processutils import setup_signal_handlers_worker
            setup_signal_handlers_worker(os.getpid(), "the warm process worker", print)
            try:
                asyncio.run(_work(args, warm_worker_class(socket_path)))
            except KeyboardInterrupt:
                pass
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
