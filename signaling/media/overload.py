"""A media process that cannot keep up sheds video on purpose, in a known order.

The sign is the process's own event loop (`lateness.LoopLag`): a second in which the loop was
behind for at least OVERLOADED_SHARE of the time is an overloaded second (a loop that only wakes
a little late, as on a machine busy with other work, stays well under it). After
OVERLOADED_AFTER_S such seconds in a row, the router holds one camera to its small simulcast layer
for everyone, the least watched first, and asks its publisher for that layer alone (REMB), so that
less arrives and less goes out; another after each further OVERLOADED_AFTER_S. Voices are never
touched. Once the loop has kept up (behind under CALM_SHARE) for RELIEF_S seconds in a row, one
camera gets its large layer back, the last shed first, and another every GIVE_BACK_S while it
keeps up (with eight shed, one at a time every RELIEF_S took 45 s: bench/overload.py). The process
is overloaded from its first overloaded stretch until GIVE_BACK_S after the last is given back:
the hosts are told once when it starts (服务器繁忙) and once when it ends, /metrics shows it, and
new rooms go to a worker that is not overloaded.
"""
from __future__ import annotations

OVERLOADED_SHARE = 0.5  # of a second spent behind: the loop cannot keep up
CALM_SHARE = 0.25  # ... and under this, it keeps up
OVERLOADED_AFTER_S = 3  # overloaded seconds in a row before a camera is shed
RELIEF_S = 5  # seconds keeping up in a row before one is given back ...
GIVE_BACK_S = 2  # ... and then one more every this long while it keeps up


class Shedding:
    """Which cameras this process holds to their small layer (`shed`, in the order shed)."""

    def __init__(self, overloaded_share: float = OVERLOADED_SHARE, calm_share: float = CALM_SHARE) -> None:
        self._overloaded_share, self._calm_share = overloaded_share, calm_share
        self.shed: list[str] = []
        self.overloaded = False
        self.episodes = 0  # times it became overloaded (for /metrics)
        self.behind_share = 0.0  # in the last second
        self._behind_run = 0
        self._calm_run = 0

    def second(self, behind_share: float, least_watched_first: list[str]) -> bool | None:
        """One second: the share of it the loop spent behind, and the cameras that send simulcast
        layers, the least watched first. Returns True when the process became overloaded in this
        second, False when it stopped being so, None otherwise."""
        self.shed = [key for key in self.shed if key in least_watched_first]  # (gone, or no longer simulcast)
        self.behind_share = behind_share
        self._behind_run = self._behind_run + 1 if behind_share >= self._overloaded_share else 0
        self._calm_run = self._calm_run + 1 if behind_share < self._calm_share else 0
        if self._behind_run >= OVERLOADED_AFTER_S:
            more = next((key for key in least_watched_first if key not in self.shed), None)
            if more is not None:
                self.shed.append(more)
            self._behind_run = 0  # (the next one after as long again: shedding takes a moment to tell)
            if not self.overloaded:
                self.overloaded = True
                self.episodes += 1
                return True
        elif self._calm_run >= RELIEF_S and self.overloaded:
            if self.shed:
                self.shed.pop()
                self._calm_run = RELIEF_S - GIVE_BACK_S
            else:
                self.overloaded = False
                return False
        return None
