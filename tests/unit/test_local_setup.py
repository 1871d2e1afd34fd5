"""The local setup's command line offers every block field a user would
change (no server: only the parser is built)."""
import argparse


def test_every_environment_field_a_user_changes_is_a_flag():
    from blocks.environment import DeployEnvironment
    from blocks.local import _FROM_THE_FLEET, _field_flags
    p = argparse.ArgumentParser()
    names = _field_flags(p)
    assert {"app_port", "health_path", "health_match", "health_body", "service_environment", "canary",
            "approval"} <= set(names)
    assert not set(names) & _FROM_THE_FLEET
    assert set(names) | _FROM_THE_FLEET >= set(DeployEnvironment.model_fields) - {"block_type_slug"}
    args = p.parse_args(["--health-path", "", "--health-match", "json", "--service-environment", "/dev/null"])
    assert args.field_health_path == "" and args.field_health_match == "json"
    assert str(args.field_service_environment) == "/dev/null", "a secret field takes a file"
    assert "(default: 8080)" in p.format_help() and "(default: root)" in p.format_help()
