"""Flows the warm worker's test runs: they say what their process is."""
from __future__ import annotations

import os
import sys
import time

from prefect import flow, get_run_logger


def _models() -> bool:
    """Whether botocore's EC2 model came loaded (by the server's preload)."""
    import botocore.loaders
    loader = getattr(botocore.loaders, "hotdeploy_loaders", {}).get(None)
    return bool(loader) and any("ec2" in repr(key) for key in loader._cache)


def _say_who() -> None:
    get_run_logger().info("engine pid=%d parent=%d paramiko=%s ours=%s models=%s", os.getpid(), os.getppid(),
                          "paramiko" in sys.modules, "tasks.network" in sys.modules, _models())


@flow
def who_runs() -> None:
    _say_who()
    print("printed by the flow", flush=True)    # reaches the worker's output: the child writes to its pipes
    import tasks.network  # noqa: F401 (our code, imported by the run itself)


@flow
def fails() -> None:
    raise RuntimeError("this flow fails on purpose")


@flow
def sleeps(seconds: float = 300) -> None:
    _say_who()
    time.sleep(seconds)
