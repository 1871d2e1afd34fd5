"""What the Prefect UI's run form shows: every parameter of every flow has a
description (from the docstring's Args)."""
import pytest


@pytest.mark.parametrize("module,name", [
    ("flows.deploy", "hot_deploy"), ("flows.rollback", "rollback"), ("flows.status", "status"),
    ("flows.provision", "provision_host"), ("flows.rehearsal", "rehearsal"), ("flows.release", "release"),
    ("flows.sweep", "sweep_ingress"), ("flows.ship", "ship"), ("flows.shard", "deploy_shard"),
])
def test_every_parameter_is_described(module, name):
    import importlib
    flow = getattr(importlib.import_module(module), name)
    undescribed = [k for k, v in flow.parameters.properties.items() if not v.get("description")]
    assert undescribed == [] and flow.description
