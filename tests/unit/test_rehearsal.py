import pytest

from hotdeploy.rehearsal import Unrehearsed, rehearsal_gate

OK = {"result": "ok", "at": "2026-11-26T04:00:00+00:00", "flow_run": "abc"}


def test_environment_without_the_requirement_needs_nothing():
    assert rehearsal_gate("shop", "1.1.0", False, None, False) == ""


def test_passed_rehearsal_lets_it_through_with_a_note():
    assert "rehearsed ok at 2026-11-26T04:00:00" in rehearsal_gate("shop", "1.1.0", True, OK, False)


@pytest.mark.parametrize("record,why", [(None, "never rehearsed"),
                                        ({"result": "failed", "reason": "downgrade: crash"}, "last rehearsal failed")])
def test_unrehearsed_is_refused_unless_overridden(record, why):
    with pytest.raises(Unrehearsed, match=f"{why}.*allow_unrehearsed"):
        rehearsal_gate("shop", "1.1.0", True, record, False)
    note = rehearsal_gate("shop", "1.1.0", True, record, True)
    assert note.startswith("UNREHEARSED: ") and why in note
