"""What ``Optimizer.decide`` returns: a :class:`Decision` with a :class:`DecisionStatus`, its
:class:`Timings` and the :class:`optimizer.memory.OptimizerMemory` for the next call."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.types import Allocation, Plan
from optimizer.memory import EMPTY_MEMORY, OptimizerMemory

HOLD = Plan(moves=(), expected_gain_usd=0.0, cost_usd=0.0, execute=False, reason="hold")


class DecisionStatus(enum.StrEnum):
    """How a decide ended (``yieldvault_rebalances_total{solver_status}``)."""

    OPTIMAL = "optimal"  # solved and checked; the plan's gate decides whether it runs
    INFEASIBLE = "infeasible"  # no allocation meets every limit
    SOLVER_ERROR = "solver_error"  # the solver failed, or the input was unusable
    CHECK_FAILED = "check_failed"  # solved, but the independent checker refused the target
    NO_VENUES = "no_venues"  # nothing to decide on (no snapshots, or NAV <= 0)


FAILED_STATUSES = frozenset(
    {DecisionStatus.INFEASIBLE, DecisionStatus.SOLVER_ERROR, DecisionStatus.CHECK_FAILED}
)


@dataclass(frozen=True, slots=True)
class Timings:
    """Wall seconds of one decide, by part."""

    solve_seconds: float = 0.0  # the solves (LP or cvxpy), summed
    build_seconds: float = 0.0  # problem construction (0 when the cached problem was reused)
    solver_seconds: float | None = None  # solver-internal time, when the solver reports it
    fit_seconds: float = 0.0  # PWL fit + parameter preparation
    total_seconds: float = 0.0
    check_seconds: float = 0.0  # every checker call
    prune_seconds: float = 0.0  # pruning of losing moves, its checker calls excluded
    plan_seconds: float = 0.0  # pricing the target, the post-cost state, the moves, the gate


@dataclass(frozen=True, slots=True)
class Decision:
    status: DecisionStatus
    allocation: Allocation | None
    plan: Plan
    # predicted annual net income (PWL income - annualised move costs - risk penalty)
    objective_usd: float | None
    predicted_apr: float | None  # Σ true income at the target / NAV (idle earns 0)
    violations: tuple[str, ...]
    limit_utilization: dict[str, float]
    reason: str
    timings: Timings = field(default_factory=Timings)
    rebuilt: bool = False  # the problem was (re)built this call
    dpp: bool = True
    # Σ_i ε_i: true optimum - PWL optimum <= this (USD/year)
    pwl_error_bound_usd: float | None = None
    venues: int = 0
    current_violations: tuple[str, ...] = ()  # limits the holdings broke before this decision
    # what the next decide needs from this one (pass it back as ``decide(..., memory=)``)
    memory: OptimizerMemory = EMPTY_MEMORY
    # per venue, the rate forecast's level shift this decide valued it with (its expected average
    # APR over the holding horizon minus its level now; README §3b); None: spot, no shift
    rate_shift: Mapping[str, float] | None = None

    # the timings under their former names (read-only)
    @property
    def solve_seconds(self) -> float:
        return self.timings.solve_seconds

    @property
    def build_seconds(self) -> float:
        return self.timings.build_seconds

    @property
    def solver_seconds(self) -> float | None:
        return self.timings.solver_seconds

    @property
    def fit_seconds(self) -> float:
        return self.timings.fit_seconds

    @property
    def total_seconds(self) -> float:
        return self.timings.total_seconds

    @property
    def check_seconds(self) -> float:
        return self.timings.check_seconds

    @property
    def prune_seconds(self) -> float:
        return self.timings.prune_seconds

    @property
    def plan_seconds(self) -> float:
        return self.timings.plan_seconds
