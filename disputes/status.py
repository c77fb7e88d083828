"""The dispute's life cycle, as a table of allowed moves."""
from __future__ import annotations

import enum

from foundation.errors import Conflict, Invalid


class Status(enum.StrEnum):
    """Where a dispute stands."""

    REGISTERED = "registered"
    SCHEDULED = "scheduled"
    IN_MEDIATION = "in_mediation"
    RESOLVED = "resolved"
    FAILED = "failed"
    REFERRED = "referred"
    FOLLOWED_UP = "followed_up"


ALLOWED_MOVES: dict[Status, frozenset[Status]] = {
    Status.REGISTERED: frozenset({Status.SCHEDULED, Status.REFERRED}),
    # A cancelled session returns the dispute to the register.
    Status.SCHEDULED: frozenset({Status.IN_MEDIATION, Status.REGISTERED}),
    # An adjourned mediation is scheduled again.
    Status.IN_MEDIATION: frozenset(
        {Status.RESOLVED, Status.FAILED, Status.REFERRED, Status.SCHEDULED}
    ),
    Status.RESOLVED: frozenset({Status.FOLLOWED_UP, Status.REGISTERED}),
    Status.FAILED: frozenset({Status.REFERRED, Status.SCHEDULED, Status.FOLLOWED_UP}),
    # A referral that comes back (a court entrusts the case to mediation again) is registered again.
    Status.REFERRED: frozenset({Status.FOLLOWED_UP, Status.REGISTERED}),
    # A relapse found at a follow-up visit reopens the dispute.
    Status.FOLLOWED_UP: frozenset({Status.REGISTERED}),
}


def bookable(current: str) -> bool:
    """Whether a session may be booked for a dispute in this status (a further one while scheduled)."""
    return current == Status.SCHEDULED or Status.SCHEDULED in ALLOWED_MOVES[Status(current)]


def reopenable(current: str) -> bool:
    """Whether a closed dispute (resolved, referred, followed up) may be registered again, to be mediated anew."""
    return not bookable(current) and Status.REGISTERED in ALLOWED_MOVES[Status(current)]


def check_move(current: str, target: str) -> Status:
    """The target status if the move is allowed; Conflict naming the allowed moves otherwise."""
    try:
        new = Status(target)
    except ValueError:
        raise Invalid("unknown status '{target}'", target=target, field="status") from None
    allowed = ALLOWED_MOVES[Status(current)]
    if new not in allowed:
        names = ", ".join(sorted(allowed))
        raise Conflict(
            "a dispute cannot move from '{current}' to '{target}' (allowed: {names})", current=current, target=target, names=names,
            field="status",
        )
    return new
