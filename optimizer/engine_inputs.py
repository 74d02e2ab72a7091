"""The inputs of one decide: the venue set (lost feeds kept frozen), the capital in flight with a
known landing, the warm-start hints, the cycle fit and the cached compiled model (rebuilt only
when the venue set or a curve's linearity changes). A base of :class:`optimizer.engine.Optimizer`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from core.types import MoveAction, PortfolioState, Venue, VenueSnapshot
from optimizer.config import OptimizerSettings, RiskLimits
from optimizer.cycle import CycleData, build_cycle
from optimizer.decision import Decision
from optimizer.model import AllocationModel
from optimizer.work import DecideWork

FloatArray = NDArray[np.float64]


class CycleInputs:
    """The cycle-input steps of :class:`optimizer.engine.Optimizer` (which sets these fields)."""

    limits: RiskLimits
    settings: OptimizerSettings
    home_chain: str
    _model: AllocationModel | None
    _model_key: tuple[Venue, ...] | None
    rebuilds: int

    def _build_cycle(
        self,
        w: DecideWork,
        snaps: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        *,
        linear: NDArray[np.bool_] | None = None,
        hint_usd: FloatArray | None = None,
        window_usd: tuple[FloatArray, FloatArray] | None = None,
        window_share: float = 0.5,
        buffer: float | None = None,
    ) -> CycleData:
        """:func:`optimizer.cycle.build_cycle` with this call's in-flight landings and exits."""
        cycle = build_cycle(
            snaps,
            portfolio,
            self.limits,
            self.settings,
            self.home_chain,
            linear=linear,
            hint_usd=hint_usd,
            window_usd=window_usd,
            window_share=window_share,
            buffer=buffer,
            in_flight_known=w.known,
            fit_cache=self._model.fit_cache if self._model is not None else None,
            rate_shift=(
                None
                if w.rate_shift is None
                else np.array([w.rate_shift.get(s.venue.id, 0.0) for s in snaps], dtype=float)
            ),
        )
        if not w.exit:
            return cycle
        # Directives.exit: the venue's upper bound is 0 (its lower bound stays: what its exit
        # liquidity cannot pay out now stays in)
        out = np.array([v.id in w.exit for v in cycle.venues], dtype=bool)
        return dataclasses.replace(cycle, ub=np.where(out, cycle.lb, cycle.ub))

    def _known_in_flight(
        self, w: DecideWork, portfolio: PortfolioState, now: datetime
    ) -> tuple[tuple[float, float], ...]:
        """Which part of ``portfolio.in_flight_usd`` is ours with a known landing time.

        ``portfolio.in_flight_landing`` when the caller's books provide it (the daemon's ledger does);
        otherwise:
        The queued withdrawals of earlier plans that have not landed yet, latest first, up to the
        amount actually in flight (so a plan that did not execute, or capital that landed early, is
        never counted; the latest landings are assumed still pending: the conservative attribution).
        Anything else in flight lands, as far as the optimizer knows, within the longest exit time.
        """
        w.flights = [(t, u) for t, u in w.flights if t > now]
        if portfolio.in_flight_landing:
            # The books know what is in flight and when it lands at the latest: better than memory,
            # and it survives a restart.
            left = max(float(portfolio.in_flight_usd), 0.0)
            booked = []
            for d, u in sorted(portfolio.in_flight_landing):
                part = min(float(u), left)
                if part > 0:
                    booked.append((max(float(d), 0.0), part))
                    left -= part
            return tuple(booked)
        left = max(float(portfolio.in_flight_usd), 0.0)
        known = []
        for t, u in sorted(w.flights, key=lambda f: f[0], reverse=True):
            part = min(u, left)
            if part <= 0:
                break
            known.append(((t - now).total_seconds() / 86_400.0, part))
            left -= part
        return tuple(known)

    @staticmethod
    def _record_flights(
        w: DecideWork, decision: Decision, queued_exit_days: dict[str, float], now: datetime
    ) -> None:
        """Remember the queued withdrawals of a plan that executes: their capital lands after the
        venue's exit time (plus the bridge off the home chain)."""
        for m in decision.plan.moves:
            if m.action is MoveAction.WITHDRAW and m.venue_id in queued_exit_days:
                w.flights.append(
                    (now + timedelta(days=queued_exit_days[m.venue_id]), float(m.amount_usd))
                )

    # -- helpers -------------------------------------------------------------------------------
    def _venue_set(
        self, w: DecideWork, snapshots: Sequence[VenueSnapshot], portfolio: PortfolioState
    ) -> list[VenueSnapshot]:
        """Current snapshots plus the last one seen, frozen, for venues whose feed is gone: always
        for held venues, and for ``keep_lost_venues_cycles`` cycles for the others, so that a
        flapping feed does not rebuild (and recompile) the problem every time it drops out."""
        w.cycle += 1
        current = {s.venue.id: s for s in snapshots}
        for s in snapshots:
            w.last_seen[s.venue.id] = w.cycle
        for vid, last in w.last_snapshot.items():
            if vid in current:
                continue
            held = portfolio.positions_usd.get(vid, 0.0) > 0
            if held or w.cycle - w.last_seen.get(vid, 0) <= self.settings.keep_lost_venues_cycles:
                current[vid] = dataclasses.replace(
                    last, frozen=True, frozen_reason="no snapshot this cycle (feed lost)"
                )
        return [current[k] for k in sorted(current)]

    @staticmethod
    def _warm_hints(
        w: DecideWork, snaps: Sequence[VenueSnapshot]
    ) -> tuple[FloatArray, tuple[FloatArray, FloatArray]] | None:
        """Last cycle's solution and refinement window per venue (NaN where unknown)."""
        if not w.warm:
            return None
        none = (np.nan, np.nan, np.nan)
        get = w.warm.get
        rows = np.array([get(s.venue.id, none) for s in snaps], dtype=float).reshape(len(snaps), 3)
        return rows[:, 0], (rows[:, 1], rows[:, 2])

    def _cycle_and_model(
        self, w: DecideWork, snaps: Sequence[VenueSnapshot], portfolio: PortfolioState
    ) -> tuple[CycleData, AllocationModel, bool, bool]:
        """Fit this cycle; reuse the compiled problem unless the venue set (or a curve's linearity)
        changed. Returns (cycle, model, rebuilt, warm): ``warm`` when the fit is refined around the
        last solution (``memory.warm``), as in a steady cycle.

        Which venues the model fits with two chords (``linear``) is part of the memory
        (``memory.model_linear``), so that a fresh optimizer (a restart) builds the model the
        cached one has and fits it the same way: same memory, same decision."""
        venues = tuple(s.venue for s in snaps)
        ids = tuple(v.id for v in venues)
        remembered = None
        if w.model_linear and tuple(i for i, _ in w.model_linear) == ids:
            remembered = np.array([f for _, f in w.model_linear], dtype=bool)
        warm = self._warm_hints(w, snaps)
        hint, window = warm if warm is not None else (None, None)
        model = self._model
        if (
            model is not None
            and self._model_key == venues
            and (remembered is None or np.array_equal(remembered, model.linear))
        ):
            cycle = self._build_cycle(
                w, snaps, portfolio, linear=model.linear, hint_usd=hint, window_usd=window
            )
            curved_now = model.linear & ~cycle.linear_fit()
            if not np.any(curved_now):
                w.model_linear = tuple(zip(ids, model.linear.tolist(), strict=True))
                return cycle, model, False, warm is not None
            # the same venues, but one fitted with two chords came out curved: the model is rebuilt
            # with it curved and the rest as they were, keeping the fit cache and the simplex basis
            # (optimizer/model.py ``previous``), and the cycle stays warm (only that venue is refitted)
            linear = model.linear & ~curved_now
            self._model = AllocationModel(
                venues, self.limits, self.settings, self.home_chain, linear=linear, previous=model
            )
            self.rebuilds += 1
            w.model_linear = tuple(zip(ids, linear.tolist(), strict=True))
            cycle = self._build_cycle(
                w, snaps, portfolio, linear=linear, hint_usd=hint, window_usd=window
            )
            return cycle, self._model, True, warm is not None
        # which venues are exactly served by the two chords around x0 (fit all venues that way first)
        probe = self._build_cycle(w, snaps, portfolio, linear=np.ones(len(snaps), dtype=bool))
        linear = probe.linear_fit()
        # the remembered fit, with every venue it fits with two chords that is no longer linear
        # curved (as the cached model above does: same memory, same model)
        resumed = remembered is not None
        if remembered is not None:
            linear = remembered & linear
        self._model = AllocationModel(
            venues,
            self.limits,
            self.settings,
            self.home_chain,
            linear=linear,
            previous=model if model is not None and self._model_key == venues else None,
        )
        self._model_key = venues
        self.rebuilds += 1
        w.model_linear = tuple(zip(ids, linear.tolist(), strict=True))
        # refit with the two-chord budget for linear venues, so the pieces the model keeps are exact
        if linear.all():
            return probe, self._model, True, False
        if resumed and warm is not None:
            cycle = self._build_cycle(
                w, snaps, portfolio, linear=linear, hint_usd=hint, window_usd=window
            )
            return cycle, self._model, True, True
        return self._build_cycle(w, snaps, portfolio, linear=linear), self._model, True, False
