"""Arguments that every host's task run of a map gets alike."""
from __future__ import annotations

from prefect import unmapped
from prefect.utilities.annotations import quote


def alike(value):
    """VALUE for each host's task run, not walked by Prefect for each: it
    looks for futures inside every parameter of every task run, and a plan
    holds the environment record's entry of every host, so walking it for
    each host grew with the fleet (9.5 ms of CPU a host at 128 hosts, a
    quarter of the deployer's). Nothing we pass this way holds a future."""
    return unmapped(quote(value))
