"""A staking-lending loop in the simulated market: our stETH collateral and WETH debt on an Aave v3
E-mode account, next to the WETH reserve's other suppliers and borrowers (protocols.loop)."""

from __future__ import annotations

import math
from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import DAY, SPY, VenueModel, jump_happens, norm_cdf, ou_step
from mockfeeds.view import MarketView
from protocols import aave
from protocols import loop as loop_math


class LoopVenue(VenueModel):
    """Each deposit of ``e`` ETH of equity opens at the leverage of the target health factor at
    today's price: collateral ``+= L e / p`` stETH, debt ``+= (L - 1) e`` ETH. Per tick the
    collateral earns the staking APR (plus its small supply APR), the debt the WETH reserve's
    borrow APR at a utilization our debt is part of, and our equity ``C p - D`` (valued in ETH at
    par, like every ETH venue here) grows by its ratio. Below HF 1 the account is liquidated:
    half the debt (all below HF 0.95) is repaid with collateral plus the liquidation bonus, which
    is what the position loses. An instant unwind sells the debt's worth of stETH at the
    discount: ``protocols.loop.unwind_cost_fraction``."""

    kind = "loop"
    STATE_FIELDS = (
        "s_others",
        "u_star",
        "collateral_steth",
        "debt_eth",
        "borrow_index",
        "last_price",
        "liquidations",
        "liquidation_loss_eth",
    )

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.loop
        assert c is not None
        self.c = c
        self.strategy = (
            aave.PRESETS[c.strategy]
            if isinstance(c.strategy, str)
            else aave.AaveRateStrategy(**c.strategy)
        )
        self.s_others = c.weth_supply_eth
        self.u_star = c.utilization
        self.collateral_steth = 0.0
        self.debt_eth = 0.0
        self.borrow_index = 1.0
        self.last_price: float | None = None
        self.liquidations = 0
        self.liquidation_loss_eth = 0.0

    # --- the WETH reserve and our account -------------------------------------------------------
    def price(self, m: MarketView) -> float:
        """stETH/ETH as the chain's token prices say (1 at par; a discount below)."""
        return m.token_price(self.chain, self.c.collateral_symbol) / m.eth_price_usd()

    def debt_others(self) -> float:
        return min(self.u_star * self.s_others, 0.999 * self.s_others)

    def total_debt(self) -> float:
        return self.debt_others() + self.debt_eth

    def utilization(self) -> float:
        return min(self.total_debt() / self.s_others, 1.0) if self.s_others > 0 else 1.0

    def borrow_apr(self) -> float:
        return float(aave.borrow_apr(self.strategy, self.utilization()))

    def supply_apr(self) -> float:
        return float(aave.supply_apr(self.strategy, self.utilization()))

    def target_leverage(self, m: MarketView) -> float:
        return loop_math.leverage_for_health_factor(
            self.c.target_health_factor, self.c.liquidation_threshold, self.c.ltv, self.price(m)
        )

    def equity_eth(self, m: MarketView) -> float:
        return self.collateral_steth * self.price(m) - self.debt_eth

    def health_factor(self, m: MarketView) -> float:
        return loop_math.health_factor(
            self.collateral_steth, self.debt_eth, self.c.liquidation_threshold, self.price(m)
        )

    def leverage(self, m: MarketView) -> float:
        e = self.equity_eth(m)
        if self.debt_eth <= 0:
            return 1.0
        return math.inf if e <= 0 else self.collateral_steth * self.price(m) / e

    def staking_apr(self, m: MarketView) -> float:
        return m.venue_base_apr(self.c.staking_venue)

    # --- the venue interface --------------------------------------------------------------------
    def base_apr(self, m: MarketView) -> float:
        """Net APR on equity of a new loop at the target leverage (what /pools shows)."""
        lev = self.target_leverage(m)
        return float(
            loop_math.net_apr(
                lev, self.staking_apr(m), self.borrow_apr(), self.c.collateral_supply_apr
            )
        )

    def tvl_usd(self, m: MarketView) -> float:
        # the WETH reserve's available liquidity: what loops can still borrow
        return max(0.0, self.s_others - self.total_debt()) * m.eth_price_usd()

    def deposit_limit_usd(self, m: MarketView) -> float:
        """Equity whose debt the reserve can still lend: available / (L - 1)."""
        lev = self.target_leverage(m)
        avail = max(0.0, 0.99 * self.s_others - self.total_debt())
        return math.inf if lev <= 1 else avail * m.eth_price_usd() / (lev - 1.0)

    def available_usd(self, m: MarketView) -> float:
        """What an instant unwind can take: the stETH/ETH pool absorbs ``unwind_liquidity_eth`` of
        the debt's worth of stETH at once."""
        lev = max(self.leverage(m), 1.0)
        if not math.isfinite(lev):
            return 0.0
        cap = self.c.unwind_liquidity_eth * m.eth_price_usd() / max(lev - 1.0, 1e-9)
        return min(cap, super().available_usd(m))

    def exit_cost_fraction(self, amount_usd: float, m: MarketView) -> float:
        lev = max(self.leverage(m), 1.0)
        if not math.isfinite(lev):
            return 1.0
        sold_eth = (lev - 1.0) * amount_usd / m.eth_price_usd()
        impact = 0.01 * sold_eth / self.c.unwind_liquidity_eth  # 1 % at the pool's depth
        # the equity is already valued at the market price p, so selling at p realises that value:
        # what is lost on top is the pool's fee and impact on the debt's worth of stETH (the
        # discount term of unwind_cost_fraction is for a position valued at par)
        return loop_math.unwind_cost_fraction(lev, 1.0, self.c.swap_fee, impact)

    def on_deposit(self, usd: float, m: MarketView) -> None:
        e = usd / m.eth_price_usd()
        p = self.price(m)
        lev = self.target_leverage(m)
        self.collateral_steth += lev * e / p
        self.debt_eth += (lev - 1.0) * e
        super().on_deposit(usd, m)

    def on_withdraw(self, usd: float, m: MarketView) -> None:
        # all of it (up to float noise in the mirror): close the account, leave no dust to liquidate
        f = 1.0 if self.ours_usd <= 0 or usd >= self.ours_usd * (1 - 1e-9) else usd / self.ours_usd
        self.collateral_steth *= 1.0 - f
        self.debt_eth *= 1.0 - f
        super().on_withdraw(usd, m)

    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
        dd = dt / DAY
        p1 = self.price(m)
        p0 = self.last_price if self.last_price is not None else p1
        self.last_price = p1
        b = self.borrow_apr()
        s = self.staking_apr(m) + self.c.collateral_supply_apr
        e0 = self.collateral_steth * p0 - self.debt_eth
        self.borrow_index *= math.exp(b * dt / SPY)
        self.collateral_steth *= 1.0 + s * dt / SPY
        self.debt_eth *= math.exp(b * dt / SPY)
        u = ou_step(
            self.u_star,
            self.c.utilization_mean,
            self.c.utilization_sigma,
            self.c.reversion_per_day,
            dd,
            z[0],
        )
        if jump_happens(self.c.shock_prob_per_day, dd, norm_cdf(z[1])):
            u += self.c.shock_size if z[2] > -0.5 else -self.c.shock_size
        self.u_star = min(max(u, 0.0), 0.99)
        self._liquidate_if_due(p1)
        if e0 <= 0 or (self.debt_eth <= 0 and self.collateral_steth <= 0):
            return 1.0
        e1 = self.collateral_steth * p1 - self.debt_eth
        return max(e1, 0.0) / e0

    def _liquidate_if_due(self, p: float) -> None:
        """Aave LiquidationLogic: below HF 1 a liquidator repays half the debt (all of it below HF
        0.95) and seizes that much collateral plus the bonus."""
        for _ in range(8):
            if self.debt_eth <= 0:
                return
            hf = self.collateral_steth * p * self.c.liquidation_threshold / self.debt_eth
            if hf >= 1.0:
                return
            close = (
                1.0
                if hf < loop_math.CLOSE_FACTOR_HF_THRESHOLD
                else loop_math.DEFAULT_LIQUIDATION_CLOSE_FACTOR
            )
            repay = close * self.debt_eth
            seized = min(self.collateral_steth, repay * (1.0 + self.c.liquidation_bonus) / p)
            self.debt_eth -= min(repay, seized * p)
            self.collateral_steth -= seized
            self.liquidations += 1
            self.liquidation_loss_eth += seized * p - min(repay, seized * p)

    def extra_row(self, m: MarketView) -> dict[str, Any]:
        return {
            "stablecoin": False,
            "ilRisk": "no",
            "exposure": "multi",
            "underlyingTokens": [self.c.collateral_address, self.c.debt_address],
            "rewardTokens": None,
            "volumeUsd1d": None,
            "volumeUsd7d": None,
            "apyBase7d": None,
        }
