"""Rollout in waves (pure): a canary first, alone, then waves, stopping once
more hosts failed than allowed; hosts after the stop are not started."""
from __future__ import annotations

import math

from .params import parse_wave_size


def plan_waves(n_hosts: int, canary: int, wave_size: str) -> list[list[int]]:
    """Host indexes (in the fleet's order) per wave: the first CANARY hosts
    alone, then waves of WAVE_SIZE hosts (or that percentage of the fleet,
    at least one)."""
    if n_hosts <= 0:
        return []
    size, percent = parse_wave_size(wave_size)
    per_wave = max(1, math.ceil(n_hosts * size / 100)) if percent else size
    first = min(canary, n_hosts)
    waves = [list(range(first))] if first else []
    for start in range(first, n_hosts, per_wave):
        waves.append(list(range(start, min(start + per_wave, n_hosts))))
    return waves


def may_continue(failed: int, max_failed_hosts: int) -> bool:
    """Whether a new wave may start after FAILED hosts did not end where they should."""
    return failed <= max_failed_hosts


def plan_shards(wave: list[int], shard_size: int, judged: bool) -> list[list[int]] | None:
    """The shards a wave runs as (each a run of the shard deployment, on
    whichever worker of the pool takes it), or None to run it from this
    run: SHARD_SIZE 0 (off), a wave no bigger than a shard, or a JUDGED
    canary wave (the canary is sampled beside its baseline from here)."""
    if shard_size <= 0 or judged or len(wave) <= shard_size:
        return None
    return [wave[start:start + shard_size] for start in range(0, len(wave), shard_size)]
