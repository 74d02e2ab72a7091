"""The optimizer room: yield curves -> concave PWL -> one DPP cvxpy problem under every risk limit
-> independent check -> gated plan. See optimizer/README.md for the model and its numbers."""

from optimizer.config import LiquidityFloor, OptimizerSettings, RiskLimits
from optimizer.engine import Decision, Optimizer
from optimizer.feasibility import check_feasibility

__all__ = [
    "Decision",
    "LiquidityFloor",
    "Optimizer",
    "OptimizerSettings",
    "RiskLimits",
    "check_feasibility",
]
