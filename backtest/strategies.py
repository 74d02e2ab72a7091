"""The strategies a backtest runs side by side, each deciding on the same snapshots and portfolio.

* ``ours``: the daemon's own ``Optimizer.decide`` under the config's limits and settings.
* ``hindsight``: the same optimizer and limits, fed the *next* period's realised state
  (``ReplayMarket.hindsight_snapshots``): an upper bound no real strategy can reach. It values that
  state as it is (``rate_forecast: spot``): a forecast would blur what it foresees.
* baselines (``optimizer/bench.py``'s, reused): ``greedy_apy`` (fill the highest quoted APR first, to
  the venue caps), ``water_filling`` (the next slice where the APR after it is highest),
  ``equal_weight``, ``chase_best`` (everything in the best quoted rate), ``stay_home`` (the home
  chain's USDC reserve only). A baseline produces a target; the plan is built and gated by the
  optimizer's own ``make_moves`` and ``gate`` with a benefit/cost ratio of 1 (it moves when the
  predicted gain over the holding horizon beats the move's gas, fees and bridge cost) and no
  hysteresis. Every strategy then goes through the same executor and books.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from core.types import NO_DIRECTIVES, Allocation, Directives, Plan, PortfolioState, VenueSnapshot
from optimizer import Decision, Optimizer, OptimizerSettings, RiskLimits
from optimizer.bench import equal_weight, greedy_highest_apy, water_filling
from optimizer.decision import HOLD, DecisionStatus
from optimizer.memory import EMPTY_MEMORY, OptimizerMemory
from optimizer.plan import gate, make_moves, round_small_trades
from optimizer.pricing import PlanContext

STRATEGIES = (
    "ours",
    "greedy_apy",
    "water_filling",
    "equal_weight",
    "chase_best",
    "stay_home",
    "hindsight",
)
# accepted by --strategies, not run by default
EXTRA_STRATEGIES = ("ours_guarded",)
TargetFn = Callable[[Sequence[VenueSnapshot], np.ndarray, float, float], np.ndarray]


class Strategy(Protocol):
    """What ``vault.cycle.run_cycle`` calls as its optimizer: ``decide(snapshots, portfolio, now,
    memory=, directives=)`` -> a Decision carrying the memory for the next cycle."""

    name: str
    hindsight: bool

    def decide(
        self,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
        memory: OptimizerMemory | None = None,
        directives: Directives = NO_DIRECTIVES,
    ) -> Decision: ...


@dataclasses.dataclass
class OptimizerStrategy:
    """``Optimizer.decide`` as the daemon calls it (through ``run_cycle``)."""

    name: str
    optimizer: Optimizer
    hindsight: bool = False
    guard: Any = None  # a vault.cycle.GuardHook (``guard.Guards``) for ours_guarded

    def decide(
        self,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
        memory: OptimizerMemory | None = None,
        directives: Directives = NO_DIRECTIVES,
    ) -> Decision:
        return self.optimizer.decide(
            snapshots, portfolio, now, memory=memory, directives=directives
        )


@dataclasses.dataclass
class TargetStrategy:
    """A baseline: a target allocation, then the optimizer's own move builder and gate."""

    name: str
    target: TargetFn
    settings: OptimizerSettings
    home_chain: str
    hindsight: bool = False

    def decide(
        self,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
        memory: OptimizerMemory | None = None,
        directives: Directives = NO_DIRECTIVES,
    ) -> Decision:
        """Baselines keep no memory and take no directives (the backtest passes none)."""
        snaps = sorted(snapshots, key=lambda s: s.venue.id)
        nav = portfolio.nav_usd
        x0 = np.array([portfolio.positions_usd.get(s.venue.id, 0.0) for s in snaps])
        if not snaps or nav <= 0:
            return _decision("no_venues", None, nav, 0.0, "hold: no venue snapshots", None, memory)
        x = np.asarray(self.target(snaps, x0, portfolio.idle_usd, nav), dtype=float)
        x = round_small_trades(x0, x, self.settings.min_trade_usd)
        # the idle where it is (after a bridge it is on the far chain, not at home)
        ctx = PlanContext(
            snaps, x0, self.settings, self.home_chain, idle_on=portfolio.idle_on(self.home_chain)
        )
        econ = make_moves(snaps, x0, x, self.settings, self.home_chain, now, ctx)
        plan = gate(econ, nav, self.settings)
        h = self.settings.emission_haircut
        income = sum(
            float(s.curve.income_usd(np.array([xi]), h)[0]) for s, xi in zip(snaps, x, strict=False)
        )
        idle = portfolio.idle_usd + float(x0.sum() - x.sum())
        alloc = Allocation({s.venue.id: float(v) for s, v in zip(snaps, x, strict=False)}, idle)
        return _decision("optimal", alloc, nav, income, plan.reason, plan, memory)


def _decision(
    status: str,
    alloc: Allocation | None,
    nav: float,
    income: float,
    reason: str,
    plan: Plan | None = None,
    memory: OptimizerMemory | None = None,
) -> Decision:
    return Decision(
        status=DecisionStatus(status),
        allocation=alloc,
        plan=plan if plan is not None else dataclasses.replace(HOLD, reason=reason),
        objective_usd=None,
        predicted_apr=income / nav if nav > 0 else None,
        violations=(),
        limit_utilization={},
        reason=reason,
        memory=memory if memory is not None else EMPTY_MEMORY,
    )


def _budget(limits: RiskLimits, x0: np.ndarray, idle: float, nav: float) -> float:
    return idle + float(x0.sum()) - limits.min_idle_ratio * nav


def make_strategy(
    name: str,
    limits: RiskLimits,
    settings: OptimizerSettings,
    home_chain: str,
    guards: Any = None,
) -> Strategy:
    """``ours_guarded``: ours with the protocol-health guards (``guard.Guards`` on the config's
    ``guards:`` section, defaults when absent) as the cycle's guard hook."""
    if name == "ours":
        return OptimizerStrategy(name, Optimizer(limits, settings, home_chain))
    if name == "hindsight":
        # it is fed the next period's state: a forecast from its own (foreseen) past would only blur
        # what it knows, so the bound stays the one before the rate forecast (optimizer README §3b)
        spot = settings.model_copy(update={"rate_forecast": "spot"})
        return OptimizerStrategy(name, Optimizer(limits, spot, home_chain), hindsight=True)
    if name == "ours_guarded":
        from guard import Guards, GuardSettings

        return OptimizerStrategy(
            name,
            Optimizer(limits, settings, home_chain),
            guard=Guards(guards if guards is not None else GuardSettings()),
        )
    h = settings.emission_haircut
    baseline_settings = settings.model_copy(
        update={"min_benefit_cost_ratio": 1.0, "hysteresis_apr": 0.0}
    )

    def quoted(snaps: Sequence[VenueSnapshot]) -> np.ndarray:
        return np.array([float(s.curve.apr(np.array([1e-6]), h)[0]) for s in snaps])

    def greedy(snaps, x0, idle, nav):
        return greedy_highest_apy(snaps, x0, _budget(limits, x0, idle, nav), limits, nav, h)

    def water(snaps, x0, idle, nav):
        return water_filling(snaps, x0, _budget(limits, x0, idle, nav), limits, nav, h, steps=50)

    def equal(snaps, x0, idle, nav):
        return equal_weight(snaps, x0, _budget(limits, x0, idle, nav), limits, nav, h)

    def one_venue(pick: Callable[[Sequence[VenueSnapshot]], int]) -> TargetFn:
        def target(snaps, x0, idle, nav):
            x = np.zeros(len(snaps))
            k = pick(snaps)
            if k >= 0:
                x[k] = _budget(limits, x0, idle, nav)
            exit_liq = np.array([s.exit_liquidity_usd for s in snaps])
            stuck = x0 - np.minimum(x0, exit_liq)  # what cannot leave stays
            return np.maximum(x, stuck)

        return target

    def best(snaps: Sequence[VenueSnapshot]) -> int:
        q = quoted(snaps)
        return int(np.argmax(q)) if len(q) and q.max() > 0 else -1

    def home_usdc(snaps: Sequence[VenueSnapshot]) -> int:
        for k, s in enumerate(snaps):
            if s.venue.chain == home_chain and s.venue.asset == "USDC":
                return k
        return -1

    fns: dict[str, TargetFn] = {
        "greedy_apy": greedy,
        "water_filling": water,
        "equal_weight": equal,
        "chase_best": one_venue(best),
        "stay_home": one_venue(home_usdc),
    }
    if name not in fns:
        raise ValueError(
            f"unknown strategy {name!r}; known: {', '.join(STRATEGIES + EXTRA_STRATEGIES)}"
        )
    return TargetStrategy(name, fns[name], baseline_settings, home_chain)
