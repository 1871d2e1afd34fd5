"""Prefect tasks, one module per outside system: container engine, package
store, local workspace (and, for the deploy half, network and remote hosts)."""
