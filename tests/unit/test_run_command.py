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
