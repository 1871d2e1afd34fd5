"""deployments.run's parameters, read as Prefect's --param reads them."""
import pytest

from deployments.run import parse_params


def test_values_are_json_when_they_are_json_else_text():
    assert parse_params(["version=1.4.2", "max_parallel=4", "dry=true", "hosts=[\"a\"]", "git_ref=3f2a9c"]) == {
        "version": "1.4.2", "max_parallel": 4, "dry": True, "hosts": ["a"], "git_ref": "3f2a9c"}


def test_a_value_may_hold_an_equals_sign():
    assert parse_params(["note=a=b"]) == {"note": "a=b"}


@pytest.mark.parametrize("bad", ["version", "=1.2.3"])
def test_a_pair_without_a_key_is_refused_in_words(bad):
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_params([bad])


def test_a_text_parameter_stays_text_even_when_it_reads_as_a_number():
    schema = {"properties": {"git_ref": {"type": "string"}, "version": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                             "max_parallel": {"type": "integer"}}}
    assert parse_params(["git_ref=12345e7", "version=1.0", "max_parallel=4"], schema) == {
        "git_ref": "12345e7", "version": "1.0", "max_parallel": 4}


def test_a_paused_run_says_where_to_approve_it():
    from uuid import UUID

    from deployments.run import waiting_line
    run = UUID("6f1f6c7e-0000-4000-8000-000000000001")
    assert waiting_line(run, "http://prefect:4200/") == (
        "paused: the run waits for an approval (approve or take back): "
        "http://prefect:4200/runs/flow-run/6f1f6c7e-0000-4000-8000-000000000001")
    assert "flow run 6f1f6c7e" in waiting_line(run, None)
