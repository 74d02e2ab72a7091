"""Risk limits and optimizer settings, as the operator writes them in YAML.

Ratios are shares of NAV (decimal: 0.25 is 25 %). A key that is absent means "no such limit".
Every limit here is enforced twice: as a cvxpy constraint and by the independent checker.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from core.config import Strict
from core.types import VenueKind

Ratio = Annotated[float, Field(ge=0, le=1)]
PositiveUsd = Annotated[float, Field(gt=0)]


class LiquidityFloor(Strict):
    """At least ``min_ratio`` of NAV must be withdrawable within ``days`` days."""

    days: Annotated[float, Field(ge=0)]
    min_ratio: Ratio


class RiskLimits(Strict):
    min_idle_ratio: Ratio = 0.0
    # chain -> USD that must stay idle on that chain after every plan (e.g. gas money, a fast-exit
    # buffer on an L2); a chain left out has no floor of its own (min_idle_ratio is on the total)
    min_idle_by_chain_usd: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    max_venue_usd: PositiveUsd | None = None
    max_venue_ratio: Ratio = 1.0
    # our position <= this share of the venue's TVL (after us)
    max_venue_tvl_ratio: Ratio | None = None
    max_kind_ratio: dict[VenueKind, Ratio] = Field(default_factory=dict)
    max_chain_ratio: dict[str, Ratio] = Field(default_factory=dict)
    max_protocol_ratio: dict[str, Ratio] = Field(default_factory=dict)
    # counts every venue exposed to it
    max_dependency_ratio: dict[str, Ratio] = Field(default_factory=dict)
    # NAV-weighted, idle scores 0
    max_avg_risk_score: Annotated[float, Field(ge=0, le=10)] | None = None
    liquidity_floors: tuple[LiquidityFloor, ...] = ()
    max_turnover_ratio: Ratio | None = None  # sum |x - x0| / NAV per rebalance
    # the venues of these kinds together (NFTs take days to sell below floor); None: no such cap
    max_illiquid_ratio: Ratio | None = None
    illiquid_kinds: tuple[str, ...] = ("nft_rental",)  # venue kinds (checked)
    # loops (snapshot state health_factor / leverage): below the HF or above the leverage the
    # venue must be exited; a target HF below it (or a target leverage above) may not grow
    min_loop_health_factor: Annotated[float, Field(gt=1)] | None = None
    max_loop_leverage: Annotated[float, Field(ge=1)] | None = None
    # a loop whose collateral trades more than this below par (state steth_eth_price) may not grow:
    # a loop opened into a widening discount is the one that gets liquidated
    max_loop_collateral_discount: Annotated[float, Field(gt=0, lt=1)] | None = None
    # NFT rentals (snapshot state floor_drawdown: the floor below its 7-day high): above this, sell
    max_nft_floor_drawdown: Annotated[float, Field(gt=0, lt=1)] | None = None

    @field_validator("illiquid_kinds")
    @classmethod
    def _kinds(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        known = {k.value for k in VenueKind}
        for k in v:
            if k not in known:
                raise ValueError(f"unknown venue kind {k!r}; known: {sorted(known)}")
        return v

    @model_validator(mode="after")
    def _investable(self) -> RiskLimits:
        floors = {f.days: f.min_ratio for f in self.liquidity_floors}
        if len(floors) != len(self.liquidity_floors):
            raise ValueError("liquidity_floors: two floors with the same days")
        return self


class OptimizerSettings(Strict):
    solver: Literal["CLARABEL", "ECOS", "SCS", "OSQP", "HIGHS"] = "CLARABEL"
    time_limit_seconds: Annotated[float, Field(gt=0)] = 10.0
    # the segment LP's first solve of a venue set (no basis yet): a cold dual simplex at 10k+ venues
    # can take longer than time_limit_seconds on a busy box, and the cvxpy fallback is no faster
    cold_time_limit_seconds: Annotated[float, Field(gt=0)] = 120.0
    pieces: Annotated[int, Field(ge=2, le=64)] = 8  # linear pieces per yield curve
    # gains vs costs are compared over this
    holding_horizon_days: Annotated[float, Field(gt=0)] = 30.0
    min_trade_usd: Annotated[float, Field(ge=0)] = 100.0
    # withdrawals tried for undoing on exact costs (plan.py); 0: no pruning
    prune_max_tries: Annotated[int, Field(ge=0)] = 8
    min_benefit_cost_ratio: Annotated[float, Field(ge=0)] = 1.5
    hysteresis_apr: Annotated[float, Field(ge=0)] = 0.0005  # portfolio APR gain below this holds
    emission_haircut: Ratio = 0.5  # share of reward-token yield not believed
    risk_aversion: Annotated[float, Field(ge=0)] = 0.0  # weight of the yield-variance penalty
    # -- cross-chain moves: idle sits on the home chain; a move to or from another chain adds a bridge leg
    bridge_fee_bps: Annotated[float, Field(ge=0, le=10_000)] = 5.0  # Across-like LP + relayer fee
    bridge_gas_usd: Annotated[float, Field(ge=0)] = 2.0  # origin-chain gas of one bridge deposit
    # gas of a bridge leg onto each chain (Across charges the relayer's fill there), USD; a chain
    # not listed pays bridge_gas_usd
    bridge_gas_by_chain_usd: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    # "convex": move costs grow with the amount (Across' fee from its sampled quotes, LP zaps' price
    # impact from the pool's reserves; optimizer/costs.py, README §3a); "linear": bridge_fee_bps and
    # every venue's fee_bps, the model before size-dependent costs
    cost_model: Literal["convex", "linear"] = "convex"
    # A voluntary withdrawal from a venue whose asset trades below its peg by more than this sells
    # at the discount and forfeits it if the peg returns: the model charges ``1 - price/peg`` of the
    # amount (annualised like every one-off cost; optimizer/costs.py ``depeg_discount``). On
    # 2023-03-11 (SVB) DAI closed at 0.9625 and was 0.9988 two days later; a plan that sold
    # $201.6k of DAI that day lost 0.76 % of NAV (backtest/README.md). 100 bp sits above the daily
    # closes' p99 deviation of USDT, DAI and USDC over 2021-2023 (76-81 bp, ../shared/data). A guard's
    # exit is not voluntary: its target 0 is a bound, whatever this costs. None: no such charge.
    depeg_discount_band_bps: Annotated[float, Field(ge=0, le=10_000)] | None = 100.0
    # ~15 min fill time; adds to exit_days off-home
    bridge_days: Annotated[float, Field(ge=0)] = 0.01
    # a withdrawal from a venue whose own exit_days is at most this pays out at once and can fund the
    # plan's deposits; from a slower venue (a queue, a redemption delay) it goes in flight until it
    # settles: it counts in NAV and toward the liquidity floors at its horizon, never as idle (README §4)
    instant_exit_days: Annotated[float, Field(ge=0)] = 0.01
    # gas is a fixed charge per transaction, which a convex model cannot hold exactly; the objective
    # amortises it over a reference move of this share of NAV (the plan gate then charges it exactly)
    gas_reference_ratio: Annotated[float, Field(gt=0, le=1)] = 0.01
    # -- staying inside the limits without churning (README §7)
    # the model aims this share of each limit inside it (caps x (1 - b), floors x (1 + b)), so that
    # accrual, marks and the plan's own costs do not push the holdings past a hard limit
    limit_buffer_ratio: Annotated[float, Field(ge=0, le=0.1)] = 0.005
    # a breach of the holdings (market drift, accrual, costs) up to this share of the limit does not
    # force a rebalance on its own; a larger breach does (the checker still holds every target to the hard limits)
    drift_tolerance_ratio: Annotated[float, Field(ge=0, le=0.2)] = 0.015
    # the state a plan leaves after its own gas and fees is checked against the hard limits; when idle
    # or a liquidity floor falls short, re-solve with the costs reserved out of idle, at most this many
    # times (0: no cost budgeting, the behaviour before limit_buffer_ratio existed)
    cost_reserve_passes: Annotated[int, Field(ge=0, le=5)] = 2
    # -- numerics
    # after the first solve, refit every curved venue with a breakpoint at its solution and solve
    # again (same compiled problem, new Parameter values): the PWL is then exact at the optimum
    refine_passes: Annotated[int, Field(ge=0, le=3)] = 1
    # breakpoint placement (optimizer/pwl.py)
    pwl_method: Literal["quantile", "greedy"] = "quantile"
    samples: Annotated[int, Field(ge=16, le=4096)] = (
        128  # grid points per curve for the PWL fit (README §9)
    )
    # passed to the solver as is
    solver_options: dict[str, float | int | bool | str] = Field(default_factory=dict)
    # how the LP (risk_aversion = 0) is solved: "segment" writes it on the pieces' segments, so only the
    # ~30-60 coupling rows remain, and solves it with HiGHS's dual simplex from the previous basis
    # (optimizer/fastlp.py; exact, the same optimum); "cvxpy" solves the cvxpy problem with `solver`
    # (the reference; the risk term always takes this path). Either falls back to cvxpy on failure.
    lp_method: Literal["segment", "cvxpy"] = "segment"
    clarabel_refinement: bool = False  # Clarabel's iterative refinement (see README for the trade)
    # solver gap/feasibility tolerance (NAV units)
    tolerance: Annotated[float, Field(gt=0, le=1e-3)] = 1e-7
    # checker slack, share of NAV
    check_tolerance_ratio: Annotated[float, Field(gt=0, le=1e-2)] = 1e-5
    # DPP compiles once and re-solves by re-stuffing numbers; its first compile grows with the number
    # of parameter entries (see README). Above this many venues the problem is still built once but
    # solved with ignore_dpp=True (plain re-canonicalisation each solve), which is cheaper there.
    dpp_max_venues: Annotated[int, Field(ge=0)] = 1500
    # a venue whose feed drops out stays in the problem (frozen at its last snapshot) this many
    # cycles, so a flapping feed does not force a rebuild; held venues stay as long as they are held
    keep_lost_venues_cycles: Annotated[int, Field(ge=0)] = 60
    # -- risk model (used when risk_aversion > 0): factor model of APR levels from the observed history
    risk_factors: Annotated[int, Field(ge=1, le=10)] = 3
    risk_window: Annotated[int, Field(ge=4)] = 90  # decide() cycles of APR history kept per venue
    risk_min_observations: Annotated[int, Field(ge=3)] = 10  # below this the penalty is off
    # -- rate forecast (optimizer/forecast.py, README §3b): the rate each venue is valued at over the
    # holding horizon, in the objective, the pruning and the gate. "spot": today's rate for all of it
    # (the behaviour before); "mean_reversion": an AR(1) per venue fitted on its own last
    # rate_forecast_window observed rate levels (one per decide), mu + (r0 - mu)(1 - phi^k)/(k(1 - phi))
    # over k = horizon / cadence periods, so a spread that reverts within hours is not paid a bridge
    # for. Fewer observations than rate_forecast_min_observations: spot. Off here (callers that do not
    # choose, bench solver and bench quality among them, keep a stateless decide); the shipped configs,
    # config/default.yaml (the daemon) and config/backtest.yaml, turn it on (the numbers: README §3b)
    rate_forecast: Literal["spot", "mean_reversion"] = "spot"
    # decide cycles of history per venue: 30 (7.5 days at 6 h) tracked the 3-year history's slow rate
    # regimes as well as spot (a 120-cycle mean lagged them: 4.624 vs 4.642 % net APY)
    rate_forecast_window: Annotated[int, Field(ge=4, le=10_000)] = 30
    rate_forecast_min_observations: Annotated[int, Field(ge=3)] = 12
    # the level is read as the average APR of a deposit of this share of NAV on each curve, where we
    # trade (a reserve above its kink quotes a spike at x -> 0 that our own deposit removes); 0: the
    # marginal APR at x -> 0. 0.4: the backtest's max_venue_ratio, the size our positions reach
    rate_forecast_reference_ratio: Ratio = 0.4

    @model_validator(mode="after")
    def _forecast_window(self) -> OptimizerSettings:
        if self.rate_forecast_min_observations > self.rate_forecast_window:
            raise ValueError(
                f"rate_forecast_min_observations ({self.rate_forecast_min_observations}) exceeds"
                f" rate_forecast_window ({self.rate_forecast_window}): the forecast would never start"
            )
        return self
