import pytest

from core.bluegreen import (
    next_deployment_name,
    rollback_plan,
    shift_traffic,
    validate_traffic,
    without,
)
from core.errors import PhiopsError


def test_names_alternate_and_never_reuse():
    assert next_deployment_name([]) == "blue"
    assert next_deployment_name(["blue"]) == "green"
    assert next_deployment_name(["blue", "green"]) == "blue-2"
    assert next_deployment_name(["green"]) == "blue"


def test_shift_scales_others_and_keeps_total():
    assert shift_traffic({}, "blue", 100) == {"blue": 100}
    assert shift_traffic({"blue": 100}, "green", 100) == {"blue": 0, "green": 100}
    assert shift_traffic({"blue": 100}, "green", 10) == {"blue": 90, "green": 10}
    plan = shift_traffic({"blue": 50, "green": 50}, "blue-2", 33)
    assert sum(plan.values()) == 100 and plan["blue-2"] == 33
    assert shift_traffic({"blue": 0}, "green", 0) == {"green": 100, "blue": 0}


def test_validate_traffic():
    assert validate_traffic({"blue": 60, "green": 40}, ["blue", "green"]) == {
        "blue": 60,
        "green": 40,
    }
    with pytest.raises(PhiopsError, match="add up to 100"):
        validate_traffic({"blue": 60}, ["blue"])
    with pytest.raises(PhiopsError, match="No deployment named red"):
        validate_traffic({"red": 100}, ["blue"])


def test_rollback_and_delete_rules():
    assert rollback_plan({"green": 100, "blue": 0}, {"blue": 100}) == {"blue": 100}
    with pytest.raises(PhiopsError, match="Nothing to roll back"):
        rollback_plan({"blue": 100}, None)
    assert without({"blue": 100, "green": 0}, "green") == {"blue": 100}
    with pytest.raises(PhiopsError, match="still takes 40%"):
        without({"blue": 60, "green": 40}, "green")
    assert without({"blue": 100}, "blue") == {}
