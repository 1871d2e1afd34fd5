"""Calls made at once inside a flow or task run."""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Callable


def together(calls: dict[str, Callable]) -> dict[str, Callable]:
    """CALLS made at once, each in a thread of its own in this run's context
    (so its boto3 client, logger and Prefect run are this run's); once all
    have ended, returned as getters that give each call's result or raise
    its error, in the order the caller asks for them."""
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="together") as pool:
        futures = {name: pool.submit(contextvars.copy_context().run, call) for name, call in calls.items()}
    return {name: future.result for name, future in futures.items()}
