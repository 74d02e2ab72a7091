"""The optimizer room: yield curves -> concave PWL -> one DPP cvxpy problem under every risk limit
-> independent check -> gated plan. See optimizer/README.md for the model and its numbers."""

from optimizer.config import LiquidityFloor, OptimizerSettings, RiskLimits
from optimizer.decision import Decision, DecisionStatus, Timings
from optimizer.engine import Optimizer
from optimizer.feasibility import check_feasibility
from optimizer.memory import EMPTY_MEMORY, OptimizerMemory

__all__ = [
    "EMPTY_MEMORY",
    "Decision",
    "DecisionStatus",
    "LiquidityFloor",
    "Optimizer",
    "OptimizerMemory",
    "OptimizerSettings",
    "RiskLimits",
    "Timings",
    "check_feasibility",
]
