"""The composite kinds' limits, each alone: the illiquid-kinds cap as one group row (built and
checked against a small model, cvxportfolio's ``_build_constraint`` + ``value`` pattern), the
state rules on loops and NFT rentals as per-venue caps, and the independent checker's verdict on
each; then through ``Optimizer.decide``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import cvxpy as cp
import numpy as np

from core.types import PortfolioState, VenueKind, VenueSnapshot
from optimizer import Optimizer, OptimizerSettings, RiskLimits
from optimizer.checker import check_allocation
from optimizer.limits import IlliquidCap, ModelVars, state_caps_usd
from optimizer.testing import make_snapshot

SETTINGS = OptimizerSettings(min_trade_usd=0.0, hysteresis_apr=0.0, min_benefit_cost_ratio=0.0)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def with_state(s: VenueSnapshot, **state: float) -> VenueSnapshot:
    return dataclasses.replace(s, state={**s.state, **state})


def loop_snap(vid: str = "loop", **state: float) -> VenueSnapshot:
    base = dict(
        health_factor=1.08,
        leverage=8.3,
        target_health_factor=1.08,
        target_leverage=8.3,
        steth_eth_price=1.0,
    )
    return with_state(
        make_snapshot(
            vid, apr=0.11, kind=VenueKind.LOOP, protocol="aave-v3", dependencies=("lido",)
        ),
        **{**base, **state},
    )


def nft_snap(vid: str = "nft", **state: float) -> VenueSnapshot:
    return with_state(
        make_snapshot(vid, apr=0.12, kind=VenueKind.NFT_RENTAL, protocol="renft", exit_days=3.0),
        **{"floor_drawdown": 0.0, **state},
    )


def test_illiquid_cap_is_one_row_over_the_illiquid_kinds() -> None:
    snaps = [nft_snap("a"), nft_snap("b"), make_snapshot("lend", apr=0.03)]
    venues = tuple(s.venue for s in snaps)
    x = cp.Variable(3)
    m = ModelVars(x=x, idle=1 - cp.sum(x), venues=venues, settings=SETTINGS, home_chain="ethereum")
    lim = IlliquidCap(RiskLimits(max_illiquid_ratio=0.05))
    (con,) = lim.build(m)
    assert lim.G.toarray().tolist() == [[1.0, 1.0, 0.0]]
    lim.cap.value = np.array([0.05])
    x.value = np.array([0.03, 0.02, 0.9])
    assert con.value()  # 0.05 <= 0.05
    x.value = np.array([0.03, 0.03, 0.0])
    assert not con.value()


def test_state_caps_exit_unhealthy_loops_and_block_growth() -> None:
    limits = RiskLimits(
        min_loop_health_factor=1.04,
        max_loop_leverage=10.0,
        max_loop_collateral_discount=0.02,
        max_nft_floor_drawdown=0.2,
    )
    snaps = [
        loop_snap("ok"),
        loop_snap("low-hf", health_factor=1.03),
        loop_snap("high-lev", leverage=11.0),
        loop_snap("target", target_health_factor=1.02, target_leverage=50.0),
        loop_snap("discount", steth_eth_price=0.97),
        nft_snap("crashing", floor_drawdown=0.25),
        nft_snap("fine", floor_drawdown=0.1),
        make_snapshot("lend"),
    ]
    x0 = np.full(len(snaps), 100.0)
    caps = state_caps_usd(snaps, x0, limits)
    assert caps is not None
    assert caps.tolist() == [np.inf, 0.0, 0.0, 100.0, 100.0, 0.0, np.inf, np.inf]
    assert state_caps_usd(snaps, x0, RiskLimits()) is None


def test_checker_names_the_loop_and_nft_rules() -> None:
    limits = RiskLimits(
        min_loop_health_factor=1.04, max_nft_floor_drawdown=0.2, max_illiquid_ratio=0.05
    )
    snaps = [loop_snap("loop", health_factor=1.02), nft_snap("nft", floor_drawdown=0.3)]
    p = PortfolioState(positions_usd={"loop": 300.0, "nft": 100.0}, idle_usd=600.0)
    rep = check_allocation(
        snaps, p, {"loop": 300.0, "nft": 100.0}, 600.0, limits, SETTINGS, "ethereum"
    )
    text = " | ".join(rep.violations)
    assert "loop_health: venue loop health factor 1.0200" in text
    assert "nft_floor_drawdown: venue nft" in text
    assert "max_illiquid_ratio[illiquid]" in text  # 100 of 1000 > 5 %
    ok = check_allocation(snaps, p, {"loop": 0.0, "nft": 0.0}, 600.0, limits, SETTINGS, "ethereum")
    assert not [v for v in ok.violations if "loop_health" in v or "nft_floor" in v]


def test_decide_exits_an_unhealthy_loop_and_caps_illiquid() -> None:
    limits = RiskLimits(min_loop_health_factor=1.04, max_illiquid_ratio=0.05)
    opt = Optimizer(limits, SETTINGS, "ethereum")
    snaps = [
        loop_snap("loop", health_factor=1.03),
        nft_snap("nft"),
        make_snapshot("lend", apr=0.03),
    ]
    p = PortfolioState(positions_usd={"loop": 400.0}, idle_usd=600.0)
    d = opt.decide(snaps, p, NOW)
    assert d.status == "optimal" and d.allocation is not None
    assert d.allocation.target_usd["loop"] == 0.0
    assert d.allocation.target_usd["nft"] <= 50.0 + 1e-6  # 5 % of NAV
    assert any("loop_health" in v for v in d.current_violations)
    assert d.plan.execute  # a broken limit forces the plan
    # the same loop, healthy: held and grown
    d2 = Optimizer(limits, SETTINGS, "ethereum").decide(
        [loop_snap("loop"), nft_snap("nft"), make_snapshot("lend", apr=0.03)], p, NOW
    )
    assert d2.allocation is not None and d2.allocation.target_usd["loop"] > 400.0


def test_nft_counts_toward_no_floor_shorter_than_its_exit_time() -> None:
    from optimizer.config import LiquidityFloor

    limits = RiskLimits(liquidity_floors=(LiquidityFloor(days=1, min_ratio=0.97),))
    opt = Optimizer(limits, SETTINGS, "ethereum")
    snaps = [nft_snap("nft"), make_snapshot("lend", apr=0.01)]
    d = opt.decide(snaps, PortfolioState(positions_usd={}, idle_usd=1000.0), NOW)
    assert d.allocation is not None
    # a 3-day sale cannot meet a 1-day floor: at most 3 % may go to the NFTs
    assert d.allocation.target_usd["nft"] <= 30.0 + 1e-6
