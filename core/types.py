"""The names that cross room boundaries: venues, snapshots, yield curves, allocations, plans.

Pure data, no I/O. Every other room may import this module; it imports only numpy.
Units are in names (``_usd``, ``_apr`` as a decimal, ``_bps``, ``_seconds``); the optimizer works
in float USD, the ledger in integer base units (see :mod:`core.money`).
"""

from __future__ import annotations

import abc
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import ArrayLike, NDArray


class VenueKind(enum.StrEnum):
    STAKING = "staking"
    LENDING = "lending"
    LP = "lp"
    BRIDGE_ARB = "bridge_arb"
    FIXED = "fixed"
    LOOP = "loop"  # staking-lending loop: stETH collateral, ETH debt, restaked (protocols.loop)
    HEDGED_LP = "hedged_lp"  # LP with its ETH delta shorted on a perpetual (protocols.hedged_lp)
    NFT_RENTAL = "nft_rental"  # floor NFTs rented out by the day (protocols.nft_rental)


#: kinds valued ``amount x mark`` (a stablecoin or LST balance; mockfeeds/market.py): their report
#: moves with the asset's price/peg, which reconciliation explains (vault/reconcile.py)
AMOUNT_MARKED_KINDS = frozenset({VenueKind.LENDING, VenueKind.STAKING, VenueKind.FIXED})
#: kinds valued at the market (a loop's equity, an LP's share of its pool, an NFT floor): their
#: value moves with prices while their protocol works, so their ``loss`` trip stays theirs
#: (guard/engine.py contagion) and reconciliation gives them ``mark_tolerance_ratio``
MARKET_VALUED_KINDS = frozenset(
    {VenueKind.LOOP, VenueKind.HEDGED_LP, VenueKind.LP, VenueKind.NFT_RENTAL}
)


#: assets whose peg is one US dollar (symbols as in ``Venue.asset``, compared upper-case): the
#: guards' depeg signal and the optimizer's depeg discount read a price against 1 USD for these
USD_PEGGED = frozenset(
    {"USDC", "USDT", "DAI", "USDE", "FRAX", "LUSD", "PYUSD", "TUSD", "USDS", "GHO"}
)


@dataclass(frozen=True, slots=True)
class VenueCosts:
    """What one move in or out of a venue costs: gas per transaction plus a proportional fee."""

    deposit_usd: float = 0.0
    withdraw_usd: float = 0.0
    # proportional, charged on each deposit and each withdrawal (fees, slippage)
    fee_bps: float = 0.0


@dataclass(frozen=True, slots=True)
class Venue:
    """A place the vault can hold capital. Static facts only; live state lives in a snapshot."""

    id: str
    kind: VenueKind
    protocol: str
    chain: str
    asset: str
    risk_score: float = 1.0  # 0 = cash-like, 10 = worst; the NAV-weighted average is budgeted
    # underlying protocols besides `protocol` (stETH market -> "lido")
    dependencies: tuple[str, ...] = ()
    # days from asking for capital back to having it (unbonding, queues, bridges)
    exit_days: float = 0.0
    costs: VenueCosts = field(default_factory=VenueCosts)

    @property
    def exposures(self) -> tuple[str, ...]:
        """Every protocol whose failure this venue is exposed to: its own and its dependencies."""
        return (self.protocol, *[d for d in self.dependencies if d != self.protocol])


class YieldCurve(abc.ABC):
    """Expected annual income in USD for holding ``x`` USD in one venue, given its state *without* us.

    Concave and non-decreasing in ``x`` on ``[0, capacity_usd]``; ``income_usd(0) == 0``.
    Real yield (fees, interest) and emission yield (reward tokens) are kept apart so the operator
    can haircut emissions. Implementations are vectorised over ``x``.
    """

    #: the most the venue can take from us (route limits, product caps); ``inf`` when unbounded
    capacity_usd: float = math.inf

    @abc.abstractmethod
    def real_income_usd(self, x_usd: NDArray[np.float64]) -> NDArray[np.float64]:
        """Annual USD income from fees and interest at position ``x_usd``."""

    def emission_income_usd(self, x_usd: NDArray[np.float64]) -> NDArray[np.float64]:
        """Annual USD income from reward-token emissions at position ``x_usd`` (zero by default)."""
        return np.zeros_like(x_usd, dtype=float)

    def income_usd(self, x_usd: ArrayLike, emission_haircut: float = 0.0) -> NDArray[np.float64]:
        """Total annual USD income, emissions scaled by ``1 - emission_haircut``."""
        x = np.asarray(x_usd, dtype=float)
        return self.real_income_usd(x) + (1.0 - emission_haircut) * self.emission_income_usd(x)

    def apr(self, x_usd: ArrayLike, emission_haircut: float = 0.0) -> NDArray[np.float64]:
        """Average APR earned by a position of ``x_usd`` (income / x); the marginal APR at ``x -> 0``."""
        x = np.asarray(x_usd, dtype=float)
        tiny = np.maximum(x, 1e-6)
        return self.income_usd(tiny, emission_haircut) / tiny


@dataclass(frozen=True, slots=True)
class VenueSnapshot:
    """One venue as its feed showed it at ``observed_at``, turned into a yield curve.

    ``state`` holds the numbers the curve was built from (for the record and for backtests).
    A ``frozen`` snapshot is the last good one of a venue whose feed has gone bad: the optimizer
    may shrink the position, never grow it.
    """

    venue: Venue
    observed_at: datetime
    curve: YieldCurve
    real_apr: float  # marginal real APR at x -> 0 (what a dashboard shows)
    emission_apr: float  # marginal emission APR at x -> 0
    tvl_usd: float
    exit_liquidity_usd: float  # what could be withdrawn right now (pool liquidity, route limit)
    state: Mapping[str, float] = field(default_factory=dict)
    frozen: bool = False
    frozen_reason: str = ""


@dataclass(frozen=True, slots=True)
class PortfolioState:
    """Where the capital is, in float USD for the optimizer (the ledger holds the exact amounts)."""

    positions_usd: Mapping[str, float]  # venue id -> current value
    idle_usd: float
    in_flight_usd: float = 0.0
    # (days until it lands at the latest, USD) for the parts of in_flight_usd whose landing the books
    # know (bridge transfers, queued withdrawals); the rest lands within the longest exit time.
    in_flight_landing: tuple[tuple[float, float], ...] = ()
    # chain -> idle USD on it (the ledger's idle:<chain> accounts), summing to idle_usd; empty means
    # every USD of idle_usd is on the home chain (callers that do not track chains)
    idle_by_chain_usd: Mapping[str, float] = field(default_factory=dict)
    # cumulative yield the books credited to each venue (negative after a loss): the guards compare
    # its change between cycles with the prediction, which moves in and out do not disturb
    earned_usd: Mapping[str, float] = field(default_factory=dict)

    @property
    def nav_usd(self) -> float:
        return self.idle_usd + self.in_flight_usd + sum(self.positions_usd.values())

    def idle_on(self, home_chain: str) -> dict[str, float]:
        """Idle per chain (home-chain only when ``idle_by_chain_usd`` is empty)."""
        if not self.idle_by_chain_usd:
            return {home_chain: float(self.idle_usd)}
        return {str(c): float(u) for c, u in self.idle_by_chain_usd.items()}


@dataclass(frozen=True, slots=True)
class Allocation:
    """Target USD per venue plus what stays idle (in total, and per chain once the plan's bridge
    legs have moved it; empty when the caller does not track chains)."""

    target_usd: Mapping[str, float]
    idle_usd: float
    idle_by_chain_usd: Mapping[str, float] = field(default_factory=dict)


class MoveAction(enum.StrEnum):
    WITHDRAW = "withdraw"
    BRIDGE = "bridge"
    DEPOSIT = "deposit"


@dataclass(frozen=True, slots=True)
class Move:
    """One step of a plan. ``idempotency_key`` makes a retried move a no-op at the venue."""

    action: MoveAction
    venue_id: str  # for BRIDGE: the venue the bridged funds are for
    amount_usd: float
    idempotency_key: str
    from_chain: str = ""
    to_chain: str = ""
    expected_gain_usd: float = 0.0  # over the holding horizon
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    """Ordered moves (withdrawals first, then bridge legs, then deposits) and whether they pay."""

    moves: tuple[Move, ...]
    expected_gain_usd: float
    cost_usd: float
    execute: bool
    reason: str  # why it executes or holds, e.g. "gain 120.5 > 1.5 x cost 40.1"


@dataclass(frozen=True, slots=True)
class Directives:
    """What the protocol-health guards and the operator impose on one decision, on top of the limits.

    * ``freeze``: venues that may shrink but never grow (like a frozen snapshot);
    * ``exit``: venues whose target is 0, executed whatever the benefit/cost gate says (still
      through the independent checker), fastest exits first, queued exits started at once;
    * ``no_new_deposits``: no venue may grow (pause new risk), withdrawals and exits still run;
    * ``hold_all``: nothing moves at all this cycle (an operator's full pause).

    ``reasons`` maps a venue id (or ``"*"`` for the whole portfolio) to why, for logs and the API.
    """

    freeze: frozenset[str] = frozenset()
    exit: frozenset[str] = frozenset()
    no_new_deposits: bool = False
    hold_all: bool = False
    reasons: Mapping[str, str] = field(default_factory=dict)

    def merge(self, other: Directives) -> Directives:
        """Both sets of constraints at once (the stricter of each)."""
        return Directives(
            freeze=self.freeze | other.freeze,
            exit=self.exit | other.exit,
            no_new_deposits=self.no_new_deposits or other.no_new_deposits,
            hold_all=self.hold_all or other.hold_all,
            reasons={**self.reasons, **other.reasons},
        )


NO_DIRECTIVES = Directives()
