"""A replayed market: real lending history served at simulated time ``t``, with our own deposits.

It answers the simulated market's paper-execution interface (``mockfeeds.paper_api.PaperMarket``:
``deposit``, ``withdraw``, ``bridge``, ``transfer``, ``withdrawal``, ``positions_view``, each taking
and returning the same JSON-shaped dicts and raising the same :class:`MarketError`), so the vault's
executor books it through the same code, in process (``vault.transport.InProcessTransport``). Time moves only forward through
:meth:`ReplayMarket.advance_to`; nothing after the current row is ever read by :meth:`snapshots`
(only :meth:`hindsight_snapshots`, named for the one strategy allowed to see the future).

Accrual, per step ``[t_i, t_{i+1})``: tokens grow by ``floor(tokens * R_s(U_i) * dt / year)`` with
``U_i = borrowed_i / (supplied_i + ours_i)`` on the reserve's fitted curve (:mod:`backtest.rates`),
i.e. the rate the reserve would have paid with us in it. Positions are token units (10^6 per token)
marked at the stablecoin's daily USD price (par where the price file is silent), so a depeg shows in
NAV. Withdrawals are bounded by the pool's cash: ``supplied + ours - borrowed``.

Snapshots are built by the adapters' own curve function (``adapters.curves.aave_lending_curve``, in
batches by its vectorised twin ``adapters.curves_batch.aave_lending_curves``, bit for bit) from
the replayed state without us, exactly as the Aave adapter builds them from a live reserve.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from backtest.curves import (
    CURVES,
    PREFETCH_CURVES,
    CurveKey,
    CurveMemo,
    MarkedCurve,
    curve_strategy,
)
from backtest.history import LendingHistory, iso
from backtest.rates import RateModels
from backtest.sources import COINGECKO_IDS, PriceTable
from backtest.venues import CHAIN_GAS_USD as CHAIN_GAS_USD
from backtest.venues import history_venues as history_venues
from backtest.venues import venue_id as venue_id
from core.money import UNITS_PER_USD, units_to_str, usd_to_units
from core.types import Venue, VenueSnapshot, YieldCurve
from mockfeeds.state import MarketError

SECONDS_PER_YEAR = 31_536_000
BRIDGE_FILL_SECONDS = 900  # an Across fill in the backtest; lands by the next cycle


class ReplayMarket:
    def __init__(
        self,
        history: LendingHistory,
        rates: RateModels,
        venues: list[Venue],
        *,
        prices: PriceTable | None = None,
        bridge_fee_bps: float = 5.0,
        bridge_gas_usd: float = 2.0,
        curves: CurveMemo | None = None,
        cycle_ts: Sequence[int] | None = None,
        home_chain: str | None = None,
    ):
        """``curves``: where built curves are kept (default: the process's :data:`CURVES`).
        ``home_chain``: the vault's, where its capital starts and idle collects; a bridge may go
        there even when the history has no reserve on it (an Arbitrum-only file, an Ethereum vault).
        ``cycle_ts``: the times the driver will take snapshots at; when given, a cycle whose curves
        are not kept builds those of the next cycles with it (:meth:`CurveMemo.prefetch`)."""
        self.h = history
        self.curves = curves if curves is not None else CURVES
        self.rates = rates
        self.venues = venues
        self.by_id = {v.id: j for j, v in enumerate(venues)}
        self.prices = prices
        self.bridge_fee_bps = bridge_fee_bps
        self.bridge_gas_usd = bridge_gas_usd
        # the amounts with the file's gaps as 0, made once (accrual reads a row an hour)
        self._supplied0 = np.nan_to_num(history.supplied_usd)
        self._borrowed0 = np.nan_to_num(history.borrowed_usd)
        self.i = 0
        self.tokens = np.zeros(len(venues), dtype=object)  # int token units (10^6 a token)
        self.tokens[:] = 0
        # per venue, USD units of our position below one token (see withdraw): not marked, not accrued
        self.credit_units = [0] * len(venues)
        self.transfers: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.chains = sorted({v.chain for v in venues} | ({home_chain} if home_chain else set()))
        self._marks_at = -1
        self._marks = np.full(len(venues), UNITS_PER_USD, dtype=np.int64)
        self._now: tuple[int, datetime] = (-1, datetime.fromtimestamp(0, UTC))
        self._keys: dict[tuple[int, int], CurveKey] = {}  # the prefetched rows' keys
        self._cycle_rows = (
            None
            if cycle_ts is None
            else np.unique(np.searchsorted(history.times, np.asarray(cycle_ts), side="right") - 1)
        )

    # -- time ------------------------------------------------------------------------------------
    @property
    def now_ts(self) -> int:
        return int(self.h.times[self.i])

    def now(self) -> datetime:
        if self._now[0] != self.i:  # one datetime a row (every snapshot and booking asks)
            self._now = (self.i, datetime.fromtimestamp(self.now_ts, UTC))
        return self._now[1]

    def marks_micro(self) -> np.ndarray:
        """USD per token in millionths, per venue, at the current time."""
        if self._marks_at != self.i:
            self._marks_at = self.i
            if self.prices is not None:
                for j in range(len(self.venues)):
                    self._marks[j] = self.mark_micro_at(j, self.now_ts)
        return self._marks

    def mark_micro_at(self, j: int, ts: int) -> int:
        """Venue ``j``'s token mark at ``ts`` in millionths of a USD (par where the file is silent)."""
        coin = COINGECKO_IDS.get(self.venues[j].asset)
        m = self.prices.mark(coin, ts) if self.prices and coin else None
        return UNITS_PER_USD if m is None else round(m * UNITS_PER_USD)

    def ours_usd(self) -> np.ndarray:
        return (
            np.array(
                [
                    int(t) * int(m) // UNITS_PER_USD
                    for t, m in zip(self.tokens, self.marks_micro(), strict=False)
                ],
                dtype=np.float64,
            )
            / UNITS_PER_USD
        )

    def advance_to(self, ts: int) -> None:
        """Accrue step by step up to the last row at or before ``ts``; never backwards."""
        h = self.h
        while self.i + 1 < len(h.times) and int(h.times[self.i + 1]) <= ts:
            i = self.i
            held = [j for j in range(len(self.venues)) if self.tokens[j]]
            if held:
                apr = self.rates.supply_apr_with(
                    i, self._supplied0[i], self._borrowed0[i], self.ours_usd()
                )
                dt = int(h.times[i + 1]) - int(h.times[i])
                for j in held:
                    # exact integers: floor(tokens * apr * dt / year), apr to 1e-12
                    rate_ppt = int(apr[j] * 1e12)
                    self.tokens[j] += (
                        int(self.tokens[j]) * rate_ppt * dt // (SECONDS_PER_YEAR * 10**12)
                    )
            self.i = i + 1
        for tr in self.transfers.values():
            if tr["status"] == "in_flight" and tr["arrives_at_ts"] <= self.now_ts:
                tr["status"] = "filled"

    # -- snapshots ---------------------------------------------------------------------------------
    def _snapshot(
        self,
        j: int,
        i: int,
        s: float,
        b: float,
        rs: float,
        rb: float,
        ours: float,
        curve: YieldCurve,
        drift_apr: float = 0.0,
    ) -> VenueSnapshot:
        strategy = curve_strategy(curve)
        others_liquidity = max(s - b, 0.0)
        if drift_apr:
            curve = MarkedCurve(curve, drift_apr)
        return VenueSnapshot(
            venue=self.venues[j],
            observed_at=self.now(),
            curve=curve,
            real_apr=rs + drift_apr,
            emission_apr=0.0,
            tvl_usd=s,
            exit_liquidity_usd=others_liquidity + ours,
            state={
                "supplied_usd": s,
                "borrowed_usd": b,
                "utilization_without_us": b / s if s > 0 else 0.0,
                "utilization": b / (s + ours) if s + ours > 0 else 0.0,
                # the day's mark (what the guards' depeg signal reads); par where the file is silent
                "asset_price_usd": float(self.marks_micro()[j]) / UNITS_PER_USD,
                "supply_apr_feed": rs,
                "borrow_apr_feed": rb,
                "optimal_usage_ratio": strategy.optimal_usage_ratio,
                "slope1_apr": strategy.slope1_apr,
                "slope2_apr": strategy.slope2_apr,
                "position_usd": ours,
            },
        )

    def snapshots(self) -> list[VenueSnapshot]:
        """Every live reserve at the current row, without us (the state an adapter would see)."""
        h, i = self.h, self.i
        live = h.live(i)
        ours = self.ours_usd()
        rows = [(j, i) for j in np.flatnonzero(live).tolist()]
        if self._cycle_rows is not None and rows and rows[0] not in self._keys:
            self._prefetch(len(rows))
        curves = self.curves.get(self._curve_keys(rows))
        return [
            self._snapshot(
                j,
                i,
                float(h.supplied_usd[i, j]),
                float(h.borrowed_usd[i, j]),
                float(h.supply_apr[i, j]),
                float(h.borrow_apr[i, j]),
                float(ours[j]),
                curve,
            )
            for (j, _), curve in zip(rows, curves, strict=True)
        ]

    def _prefetch(self, live_now: int) -> None:
        """Build the curves of this and the coming cycle rows in one batch (each row's live
        reserves, ``PREFETCH_CURVES`` in all): the same curves each cycle would build."""
        assert self._cycle_rows is not None
        h = self.h
        start = int(np.searchsorted(self._cycle_rows, self.i, side="right"))
        count = max(1, PREFETCH_CURVES // max(live_now, 1))
        rows = [
            (j, i)
            for i in [self.i, *self._cycle_rows[start : start + count - 1].tolist()]
            for j in np.flatnonzero(h.live(i)).tolist()
        ]
        self._keys = {}
        self._keys = dict(zip(rows, self._curve_keys(rows), strict=True))
        self.curves.prefetch(list(self._keys.values()))

    def _curve_keys(self, rows: list[tuple[int, int]]) -> list[CurveKey]:
        """The curve key (rate strategy, debt, the others' liquidity) of each ``(j, i)``: reserve
        ``j`` at row ``i``; the prefetched ones from :meth:`_prefetch`, the rest made in a batch."""
        known = self._keys
        todo = [r for r in rows if r not in known]
        if todo:
            h = self.h
            made = self.rates.strategies([(i, j) for j, i in todo])
            for (j, i), strategy in zip(todo, made, strict=True):
                s, b = float(h.supplied_usd[i, j]), float(h.borrowed_usd[i, j])
                known[(j, i)] = (strategy, b, max(s - b, 0.0))
        out = [known[r] for r in rows]
        for r in todo:  # not kept past this call: only the prefetched rows are
            known.pop(r, None)
        return out

    def hindsight_snapshots(self, horizon_seconds: int) -> list[VenueSnapshot]:
        """Perfect foresight of the next ``horizon_seconds``, of rates *and* marks.

        Rates: per reserve, the row of ``(t, t + horizon]`` whose supply APR is that period's median,
        on that row's own calibrated curve (the realised rate a position held through the period
        earns, to the middle). Marks: the token's mark move to the end of the period,
        ``d = (m(t + horizon) / m(t) - 1) * year / horizon``, is added to the curve as a linear term
        (:class:`MarkedCurve`): a depeg ahead makes the reserve pay less than nothing (it takes 0),
        a recovery ahead pays (it buys the dip). So the same optimizer under the same limits sees
        everything a position held through the period will earn or lose."""
        h, i = self.h, self.i
        hi = int(np.searchsorted(h.times, self.now_ts + horizon_seconds, side="right"))
        if i + 1 >= len(h.times):
            return self.snapshots()
        rows = np.arange(i + 1, max(hi, i + 2))
        live = h.live(i)
        ours = self.ours_usd()
        marks = self.marks_micro()
        end_ts = int(h.times[int(rows[-1])])
        span = max(end_ts - self.now_ts, 1)
        picked: list[tuple[int, int]] = []
        for j in np.flatnonzero(live).tolist():
            rates = np.nan_to_num(h.supply_apr[rows, j], nan=-1.0)
            k = int(rows[np.argsort(rates, kind="stable")[len(rows) // 2]])
            if h.live(k)[j]:
                picked.append((j, k))
        curves = self.curves.get(self._curve_keys(picked))
        out = []
        for (j, k), curve in zip(picked, curves, strict=True):
            drift = (self.mark_micro_at(j, end_ts) / int(marks[j]) - 1.0) * SECONDS_PER_YEAR / span
            snap = self._snapshot(
                j,
                k,
                float(h.supplied_usd[k, j]),
                float(h.borrowed_usd[k, j]),
                float(h.supply_apr[k, j]),
                float(h.borrow_apr[k, j]),
                float(ours[j]),
                curve,
                drift_apr=drift,
            )
            out.append(snap)
        return out

    # -- paper execution (the simulated market's interface) ------------------------------------------
    def _venue(self, venue: Any) -> int:
        if not isinstance(venue, str) or venue not in self.by_id:
            raise MarketError("venue", f"unknown venue {venue!r}")
        return self.by_id[venue]

    def _amount(self, raw: Any) -> int:
        if not isinstance(raw, str):
            raise MarketError("amount_usd", 'must be a decimal string, e.g. "1000.000000"')
        try:
            units = usd_to_units(raw)
        except ValueError:
            raise MarketError("amount_usd", f"not a decimal number: {raw!r}") from None
        if units <= 0:
            raise MarketError("amount_usd", "must be > 0")
        return units

    def _replayed(self, key: Any, op: str, fp: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(key, str) or not 1 <= len(key) <= 200:
            raise MarketError("idempotency_key", "must be a string of 1 to 200 characters")
        rec = self.idempotency.get(key)
        if rec is None:
            return None
        if rec["op"] != op or rec["fp"] != fp:
            raise MarketError("idempotency_key", "already used for a different request", 409)
        return rec["response"]

    def _remember(
        self, key: str, op: str, fp: dict[str, Any], resp: dict[str, Any]
    ) -> dict[str, Any]:
        self.idempotency[key] = {"op": op, "fp": fp, "response": resp}
        return resp

    def cash_usd(self, j: int) -> float:
        """What the pool can pay out now: ``supplied + ours - borrowed``."""
        i = self.i
        s, b = (
            float(np.nan_to_num(self.h.supplied_usd[i, j])),
            float(np.nan_to_num(self.h.borrowed_usd[i, j])),
        )
        return max(s - b, 0.0) + float(self.ours_usd()[j])

    def position_units(self, j: int) -> int:
        return (
            int(self.tokens[j]) * int(self.marks_micro()[j]) // UNITS_PER_USD + self.credit_units[j]
        )

    def deposit(self, venue_id: Any, amount_usd: Any, idempotency_key: Any) -> dict[str, Any]:
        amount = self._amount(amount_usd)
        fp = {"venue": venue_id, "amount_usd": units_to_str(amount)}
        prior = self._replayed(idempotency_key, "deposit", fp)
        if prior is not None:
            return prior
        j = self._venue(venue_id)
        if not self.h.live(self.i)[j]:
            raise MarketError("venue", f"reserve {venue_id} is not live at {iso(self.now_ts)}")
        before = self.position_units(j)
        self.tokens[j] += amount * UNITS_PER_USD // int(self.marks_micro()[j])
        # what the position gained at the mark; the rounding dust of buying tokens off par is a fee
        applied = self.position_units(j) - before
        resp = {
            "venue": venue_id,
            "action": "deposit",
            "status": "completed",
            "amount_usd": units_to_str(amount),
            "applied_usd": units_to_str(applied),
            "fee_usd": units_to_str(amount - applied),
            "position_usd": units_to_str(self.position_units(j)),
            "idempotency_key": idempotency_key,
            "sim_time": iso(self.now_ts),
        }
        return self._remember(idempotency_key, "deposit", fp, resp)

    def withdraw(self, venue_id: Any, amount_usd: Any, idempotency_key: Any) -> dict[str, Any]:
        amount = self._amount(amount_usd)
        fp = {"venue": venue_id, "amount_usd": units_to_str(amount)}
        prior = self._replayed(idempotency_key, "withdraw", fp)
        if prior is not None:
            return prior
        j = self._venue(venue_id)
        pos = self.position_units(j)
        if amount > pos:
            raise MarketError("amount_usd", f"exceeds position {units_to_str(pos)}")
        cash = self.cash_usd(j)
        if amount / UNITS_PER_USD > cash + 1e-9:
            raise MarketError("amount_usd", f"exceeds available liquidity {cash:.2f}")
        mark = int(self.marks_micro()[j])
        held = int(self.tokens[j])
        if amount == pos:
            tokens, credit = held, 0
        else:
            # the position's value drops by exactly the amount (the executor books it so): burn the
            # fewest tokens whose value leaves at most ``pos - amount``; the part of a token left
            # over (< 2 units at a mark < 2) stays ours as credit. Off par no unit is created or lost.
            left = pos - amount
            tokens = min(max((amount - self.credit_units[j]) * UNITS_PER_USD // mark - 1, 0), held)
            while tokens < held and (held - tokens) * mark // UNITS_PER_USD > left:
                tokens += 1
            while tokens > 0 and (held - tokens + 1) * mark // UNITS_PER_USD <= left:
                tokens -= 1
            credit = left - (held - tokens) * mark // UNITS_PER_USD
        self.tokens[j] = held - tokens
        self.credit_units[j] = credit
        applied = pos - self.position_units(j)
        if applied != amount:
            raise AssertionError(f"withdraw {venue_id}: position fell by {applied}, not {amount}")
        resp = {
            "venue": venue_id,
            "action": "withdraw",
            "amount_usd": units_to_str(amount),
            "applied_usd": units_to_str(applied),
            "fee_usd": "0.000000",
            "position_usd": units_to_str(self.position_units(j)),
            "idempotency_key": idempotency_key,
            "sim_time": iso(self.now_ts),
            "status": "completed",
            "withdrawal_id": None,
            "settles_at": iso(self.now_ts),
        }
        return self._remember(idempotency_key, "withdraw", fp, resp)

    def bridge(
        self, from_chain: Any, to_chain: Any, amount_usd: Any, idempotency_key: Any
    ) -> dict[str, Any]:
        """Fee ``bridge_fee_bps * amount + bridge_gas_usd`` (the optimizer's own Across-like
        assumption), filled after :data:`BRIDGE_FILL_SECONDS`."""
        amount = self._amount(amount_usd)
        fp = {"from_chain": from_chain, "to_chain": to_chain, "amount_usd": units_to_str(amount)}
        prior = self._replayed(idempotency_key, "bridge", fp)
        if prior is not None:
            return self.transfer(prior["transfer_id"])
        for field, chain in (("from_chain", from_chain), ("to_chain", to_chain)):
            if chain not in self.chains and chain != from_chain:
                raise MarketError(field, f"unknown chain {chain!r}; known: {self.chains}")
        if from_chain == to_chain:
            raise MarketError("to_chain", "must differ from from_chain")
        fee = min(
            amount * int(self.bridge_fee_bps * 100) // 1_000_000
            + usd_to_units(self.bridge_gas_usd),
            amount,
        )
        tid = "t-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        self.transfers[tid] = {
            "transfer_id": tid,
            "from_chain": from_chain,
            "to_chain": to_chain,
            "amount_usd": units_to_str(amount),
            "fee_usd": units_to_str(fee),
            "received_usd": units_to_str(amount - fee),
            "created_at": iso(self.now_ts),
            "arrives_at": iso(self.now_ts + BRIDGE_FILL_SECONDS),
            "arrives_at_ts": self.now_ts + BRIDGE_FILL_SECONDS,
            "status": "in_flight",
            "idempotency_key": idempotency_key,
        }
        self._remember(idempotency_key, "bridge", fp, {"transfer_id": tid})
        return self.transfer(tid)

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        rec = self.transfers.get(transfer_id)
        if rec is None:
            raise MarketError("transfer_id", f"unknown transfer {transfer_id!r}", 404)
        return {k: v for k, v in rec.items() if not k.endswith("_ts")} | {
            "sim_time": iso(self.now_ts)
        }

    def withdrawal(self, withdrawal_id: str) -> dict[str, Any]:
        raise MarketError(
            "withdrawal_id", f"unknown withdrawal {withdrawal_id!r} (lending pays at once)", 404
        )

    def save_if_dirty(self) -> None:
        """Nothing to make durable: a replay is re-run, not recovered."""

    def positions_view(self) -> dict[str, Any]:
        rows = [
            {
                "venue": v.id,
                "position_usd": units_to_str(self.position_units(j)),
                "pending_withdrawal_usd": "0.000000",
            }
            for j, v in enumerate(self.venues)
            if self.tokens[j] or self.credit_units[j]
        ]
        in_flight = sum(
            usd_to_units(t["amount_usd"])
            for t in self.transfers.values()
            if t["status"] == "in_flight"
        )
        return {
            "positions": rows,
            "in_flight_bridge_usd": units_to_str(in_flight),
            "sim_time": iso(self.now_ts),
        }
