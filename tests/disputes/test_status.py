"""The dispute life cycle."""
from __future__ import annotations

import pytest

from disputes.status import Status, check_move
from foundation.errors import Conflict, Invalid


def test_normal_path_is_allowed() -> None:
    path = ["registered", "scheduled", "in_mediation", "resolved", "followed_up"]
    for current, target in zip(path, path[1:]):
        assert check_move(current, target) == Status(target)


@pytest.mark.parametrize("current,target", [
    ("registered", "resolved"), ("registered", "in_mediation"), ("scheduled", "followed_up"),
    ("resolved", "failed"), ("referred", "scheduled"),
])
def test_illegal_moves_are_refused_naming_the_allowed_ones(current: str, target: str) -> None:
    with pytest.raises(Conflict) as caught:
        check_move(current, target)
    assert current in caught.value.message and "allowed" in caught.value.message


def test_unknown_status_is_invalid() -> None:
    with pytest.raises(Invalid):
        check_move("registered", "done")


def test_relapse_reopens_a_followed_up_dispute() -> None:
    assert check_move("followed_up", "registered") == Status.REGISTERED
