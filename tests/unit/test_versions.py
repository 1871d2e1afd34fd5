from datetime import datetime, timezone

import pytest

from hotdeploy.versions import InvalidVersion, Version, next_version, timestamp_version


def at(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_timestamp_scheme_has_no_leading_zeros():
    assert str(timestamp_version(at(2016, 1, 25, 15, 30, 0))) == "2016.125.153000"
    assert str(timestamp_version(at(2026, 11, 26, 11, 30, 45))) == "2026.1126.113045"
    assert str(timestamp_version(at(2026, 1, 1, 0, 0, 7))) == "2026.101.7"


@pytest.mark.parametrize("earlier,later", [
    (at(2026, 1, 31, 23, 59, 59), at(2026, 2, 1, 0, 0, 0)),      # across a month
    (at(2026, 9, 30, 12, 0, 0), at(2026, 10, 1, 0, 0, 0)),       # 930 < 1001
    (at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1, 0, 0, 0)),     # across a year
    (at(2026, 11, 26, 9, 59, 59), at(2026, 11, 26, 10, 0, 0)),   # 95959 < 100000
])
def test_timestamps_order_like_time(earlier, later):
    assert timestamp_version(earlier) < timestamp_version(later)


def test_same_second_builds_get_distinct_ordered_versions():
    now = at(2026, 11, 26, 11, 30, 45)
    published = []
    for _ in range(3):
        published.append(str(next_version(now, published)))
    assert published == ["2026.1126.113045", "2026.1126.113046", "2026.1126.113047"]


def test_clock_behind_the_store_still_moves_forward():
    assert str(next_version(at(2026, 1, 1), ["2026.1126.113045"])) == "2026.1126.113046"


def test_explicit_version_must_be_newer_than_every_published_one():
    assert str(next_version(at(2026, 1, 1), ["1.2.3"], "1.10.0")) == "1.10.0"
    with pytest.raises(InvalidVersion, match="not newer than 1.2.3"):
        next_version(at(2026, 1, 1), ["1.2.3"], "1.2.3")


@pytest.mark.parametrize("bad", [
    "2016.0125.1530", "01.2.3", "1.2", "1.2.3.4", "1.2.3-rc1", "1.2.3+build", "v1.2.3",
    "1.0; rm -rf /", "1.0.0$(reboot)", "1.0.0\n", " 1.0.0", "", "latest", "1.2.x",
])
def test_rejects_non_semver_leading_zeros_and_shell_characters(bad):
    with pytest.raises(InvalidVersion, match="invalid version"):
        Version.parse(bad)


def test_numeric_not_lexical_ordering():
    assert Version.parse("2026.1001.0") > Version.parse("2026.930.235959")
    assert Version.parse("1.10.0") > Version.parse("1.9.9")
