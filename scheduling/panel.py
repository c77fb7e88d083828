"""The panel a mediation needs: seats by role, optional or pinned, with preferences."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foundation.vocabulary import DisputeType, Role


class Seat(BaseModel):
    """One or more places on the panel for a role."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    count: int = Field(1, ge=1, le=10)
    specialty: DisputeType | None = None
    dialect: str | None = Field(None, max_length=32)
    optional: bool = False
    # A named expert who always attends in this seat (count must then be 1).
    expert_id: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _pinned_is_one(self) -> Seat:
        if self.expert_id is not None and self.count != 1:
            raise ValueError("a seat pinned to a named expert has count 1")
        return self


class Panel(BaseModel):
    """The whole requirement: a list of seats."""

    model_config = ConfigDict(extra="forbid")

    seats: list[Seat] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _pins_are_distinct(self) -> Panel:
        pinned = [s.expert_id for s in self.seats if s.expert_id is not None]
        if len(pinned) != len(set(pinned)):
            raise ValueError("the same expert is pinned to two seats")
        return self


def default_panel(dispute_type: str | None = None) -> Panel:
    """The Yiyang three: legal-affairs officer, lawyer, community governance specialist."""
    specialty = DisputeType(dispute_type) if dispute_type else None
    return Panel(seats=[
        Seat(role=Role.LEGAL_OFFICER, specialty=specialty),
        Seat(role=Role.LAWYER, specialty=specialty),
        Seat(role=Role.GOVERNANCE_SPECIALIST, specialty=specialty),
    ])
