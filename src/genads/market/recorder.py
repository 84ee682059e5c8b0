"""A pipeline wrapper that tallies the true (position-free) CTR of a pipeline's candidates and auction winners
(the market verdict's "chosen ads' true CTR")."""

from __future__ import annotations

import numpy as np


class Recorder:
    """A pipeline that also tallies the true (position-free) CTR of its candidates and of its auction winners.

    It asks the engine for the request's users (``needs_users``) to read the ground truth; the wrapped
    pipeline gets them only if it needs them. The strategic bidders' replays call :meth:`auction` with other
    shapes; only the call right after :meth:`propose` is counted."""

    needs_users = True

    def __init__(self, pipe, world) -> None:
        self.pipe, self.world, self.name = pipe, world, getattr(pipe, "name", "pipeline")
        self.sums = np.zeros(4)  # candidate CTR sum, candidates, winner CTR sum, winners
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def propose(self, history, live, bids, users):
        if getattr(self.pipe, "needs_users", False):
            ads, q = self.pipe.propose(history, live, bids, users=users)
        else:
            ads, q = self.pipe.propose(history, live, bids)
        ctr = self.world.ad_ctr(users, ads)
        self.sums[:2] += ctr[ads >= 0].sum(), (ads >= 0).sum()
        self._last = (ads, ctr)
        return ads, q

    def auction(self, bids, quality):
        alloc = self.pipe.auction(bids, quality)
        if self._last is not None and self._last[0].shape == bids.shape:
            _, ctr = self._last
            w = alloc.winners
            self.sums[2:] += np.where(w >= 0, np.take_along_axis(ctr, np.maximum(w, 0), 1), 0.0).sum(), (w >= 0).sum()
            self._last = None
        return alloc

    def __getattr__(self, name: str):  # the creative hooks of a wrapped pipeline (genads.market.creative_choice)
        pipe = self.__dict__.get("pipe")
        if pipe is None:
            raise AttributeError(name)
        return getattr(pipe, name)

    def figures(self) -> dict:
        return {"candidates_true_ctr": float(self.sums[0] / max(self.sums[1], 1)),
                "winners_true_ctr": float(self.sums[2] / max(self.sums[3], 1))}
