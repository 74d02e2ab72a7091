"""Venue models of the simulated market: each kind's pool state, how it evolves, how our deposits
change it, and what it earns. All protocol math comes from :mod:`protocols`.

A model never holds our position: the market does (exact Decimal). The model sees it as
``ours_usd`` (a float mirror the market keeps current) because our money is part of the pool's
state: it is supply in a lending pool, liquidity in an LP, inventory on a bridge route.

``step(t, dt, z, m)`` advances the pool by ``dt`` simulated seconds using the standard normals
``z`` (reproducible: the market draws them in a fixed order) and returns the growth factor of one
unit of our position over the step (``1 + apr * dt / year`` for interest, share-rate ratios for
staking, ``(1 + IL) * (1 + fees/TVL)`` for a hedged LP position).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from protocols import aave, across, compound, lido, uniswap

if TYPE_CHECKING:
    from mockfeeds.market import Market

SPY = 31_536_000.0
DAY = 86_400.0
N_NORMALS = 4  # standard normals each venue draws per step


def ou_step(
    x: float, mean: float, stationary_sd: float, reversion_per_day: float, dt_days: float, z: float
) -> float:
    """Exact Ornstein-Uhlenbeck transition: ``x' = m + (x - m) a + sd sqrt(1 - a^2) z``, ``a = e^{-theta dt}``."""
    a = math.exp(-reversion_per_day * dt_days)
    return mean + (x - mean) * a + stationary_sd * math.sqrt(max(0.0, 1.0 - a * a)) * z


def jump_happens(rate_per_day: float, dt_days: float, u: float) -> bool:
    """A Poisson event with ``rate_per_day`` happens in ``dt_days`` when ``u < 1 - e^{-rate dt}``."""
    return u < -math.expm1(-rate_per_day * dt_days)


def decayed_per_day(usd_per_day: float, half_life_days: float, age_days: float) -> float:
    """Emission that halves every ``half_life_days``: ``usd_per_day * 2^(-age / half_life)``."""
    return usd_per_day * 2.0 ** (-max(0.0, age_days) / half_life_days)


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


class VenueModel:
    """Base class: the shared bookkeeping of every kind."""

    kind = ""

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.chain = cfg.chain
        self.asset = cfg.asset
        self.epoch0 = epoch0  # when the simulated history starts (emission decay origin)
        self.ours_usd = 0.0
        self.paused = False  # exploit: deposits and withdrawals refused
        # liquidity crunch on venues without a pool model
        self.withdraw_cap_usd: float | None = None
        self.halted = False  # bridge halt on an arb route

    # --- state persistence -------------------------------------------------------------------
    STATE_FIELDS: tuple[str, ...] = ()

    def dump(self) -> dict[str, Any]:
        d = {
            k: (list(v) if isinstance(v, deque) else v)
            for k in self.STATE_FIELDS
            for v in (getattr(self, k),)
        }
        d.update(
            ours_usd=self.ours_usd,
            paused=self.paused,
            withdraw_cap_usd=self.withdraw_cap_usd,
            halted=self.halted,
        )
        return d

    def load(self, d: dict[str, Any]) -> None:
        for k in (*self.STATE_FIELDS, "ours_usd", "paused", "withdraw_cap_usd", "halted"):
            if k in d:
                v = d[k]
                setattr(
                    self,
                    k,
                    deque(v, maxlen=getattr(self, k).maxlen)
                    if isinstance(getattr(self, k, None), deque)
                    else v,
                )

    # --- interface ---------------------------------------------------------------------------
    def step(self, t: float, dt: float, z: list[float], m: Market) -> float:
        raise NotImplementedError

    def base_apr(self, m: Market) -> float:
        """Marginal real APR now (what the feed reports)."""
        raise NotImplementedError

    def reward_apr(self, m: Market) -> float:
        return 0.0

    def tvl_usd(self, m: Market) -> float:
        raise NotImplementedError

    def available_usd(self, m: Market) -> float:
        """What a withdrawal can take right now, pool-wide (before our position bound)."""
        cap = math.inf if self.withdraw_cap_usd is None else self.withdraw_cap_usd
        return cap

    def entry_cost_fraction(self, amount_usd: float, m: Market) -> float:
        if self.cfg.entry_fee_bps is not None:
            return self.cfg.entry_fee_bps / 10_000
        return 0.0

    def deposit_limit_usd(self, m: Market) -> float:
        return math.inf

    def on_deposit(self, usd: float, m: Market) -> None:
        self.ours_usd += usd

    def on_withdraw(self, usd: float, m: Market) -> None:
        self.ours_usd = max(0.0, self.ours_usd - usd)

    def withdrawal_delay_seconds(self, amount_usd: float, t: float, m: Market) -> float:
        """0 for instant withdrawals; otherwise seconds until the queued withdrawal pays out."""
        return 0.0

    def extra_row(self, m: Market) -> dict[str, Any]:
        """Kind-specific DefiLlama row fields (volume, il, tokens)."""
        return {}


# ---------------------------------------------------------------------------------------------
class LendingVenue(VenueModel):
    """Aave v3 reserve or Compound v3 comet (``protocol`` decides the curve and the feed shape).

    Debt = ``u*`` x others' supply while no scenario pins utilization, so our supply lowers
    ``U = debt / (others + ours)`` and the rate exactly as ``aave.supply_apr_after_deposit`` says.
    """

    kind = "lending"
    STATE_FIELDS = ("s_others", "s_trend", "u_star", "pin_u", "liquidity_index", "borrow_index")

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.lending
        assert c is not None
        self.c = c
        self.is_compound = cfg.protocol.startswith("compound")
        if isinstance(c.strategy, str):
            self.strategy = aave.PRESETS[c.strategy]
        else:
            self.strategy = aave.AaveRateStrategy(**c.strategy)
        self.curve = (
            compound.CometCurve(**c.comet_curve) if c.comet_curve else compound.PRESET_CUSDCV3
        )
        self.s_others = c.total_supply_usd
        self.s_trend = c.total_supply_usd
        self.u_star = c.utilization
        self.pin_u: float | None = None
        self.liquidity_index = 1.0
        self.borrow_index = 1.0

    def total_supply(self) -> float:
        return self.s_others + self.ours_usd

    def debt(self) -> float:
        total = self.total_supply()
        if self.pin_u is not None:
            return self.pin_u * total
        return min(self.u_star * self.s_others, 0.9999 * total)

    def utilization(self) -> float:
        d = self.debt()
        return aave.utilization(d, max(0.0, self.total_supply() - d))

    def supply_apr_at(self, u: float) -> float:
        if self.is_compound:
            return float(compound.comet_supply_apr(self.curve, u))
        return float(aave.supply_apr(self.strategy, u))

    def borrow_apr_at(self, u: float) -> float:
        if self.is_compound:
            return float(compound.comet_borrow_apr(self.curve, u))
        return float(aave.borrow_apr(self.strategy, u))

    def base_apr(self, m: Market) -> float:
        return self.supply_apr_at(self.utilization())

    def borrow_apr(self) -> float:
        return self.borrow_apr_at(self.utilization())

    def emission_usd_per_day(self, t: float) -> float:
        inc = self.c.incentives
        return decayed_per_day(inc.usd_per_day, inc.half_life_days, (t - self.epoch0) / DAY)

    def reward_apr(self, m: Market) -> float:
        total = self.total_supply()
        return 0.0 if total <= 0 else self.emission_usd_per_day(m.state_time) * 365.0 / total

    def tvl_usd(self, m: Market) -> float:
        # DefiLlama's Aave adapter reports supply - borrow (available liquidity) as tvlUsd
        return max(0.0, self.total_supply() - self.debt()) * m.token_price(self.chain, self.asset)

    def available_usd(self, m: Market) -> float:
        avail = max(0.0, self.total_supply() - self.debt())
        return min(avail, super().available_usd(m))

    def deposit_limit_usd(self, m: Market) -> float:
        """Room under the reserve's supply cap (whole tokens at par; 0 = no cap)."""
        cap = self.c.supply_cap_tokens
        return math.inf if cap <= 0 else max(0.0, cap - self.total_supply())

    def step(self, t: float, dt: float, z: list[float], m: Market) -> float:
        dd = dt / DAY
        r_s = self.base_apr(m)
        r_b = self.borrow_apr()
        r_w = self.reward_apr(m)
        growth = 1.0 + r_s * dt / SPY
        self.liquidity_index *= growth
        self.borrow_index *= math.exp(r_b * dt / SPY)
        self.s_trend *= growth
        x = math.log(self.s_others * growth / self.s_trend)
        x = ou_step(x, 0.0, self.c.supply_log_sigma, self.c.supply_reversion_per_day, dd, z[0])
        self.s_others = self.s_trend * math.exp(x)
        u = ou_step(
            self.u_star,
            self.c.utilization_mean,
            self.c.utilization_sigma,
            self.c.reversion_per_day,
            dd,
            z[1],
        )
        if jump_happens(self.c.shock_prob_per_day, dd, _norm_cdf(z[2])):
            # demand shocks are mostly up
            u += self.c.shock_size if z[3] > -0.5 else -self.c.shock_size
        self.u_star = min(max(u, 0.0), 0.995)
        return 1.0 + (r_s + r_w) * dt / SPY

    def pin(self, u: float | None) -> None:
        """Pin the pool's utilization (scenarios); unpinning keeps today's debt as the new demand."""
        if u is None and self.pin_u is not None and self.s_others > 0:
            self.u_star = min(self.pin_u * self.total_supply() / self.s_others, 0.995)
        self.pin_u = u

    def extra_row(self, m: Market) -> dict[str, Any]:
        inc = self.c.incentives
        return {
            "stablecoin": True,
            "ilRisk": "no",
            "exposure": "single",
            "underlyingTokens": [self.c.underlying],
            "rewardTokens": [inc.reward_address] if inc.usd_per_day > 0 else None,
            "volumeUsd1d": None,
            "volumeUsd7d": None,
            "apyBase7d": None,
        }


# ---------------------------------------------------------------------------------------------
class StakingVenue(VenueModel):
    """Liquid staking: the share rate steps once a day at the oracle report by the user APR
    ``(1 - fee) * protocol APR`` (:func:`protocols.lido.post_rebase_share_rate`); slashing losses
    are socialised at the next report; withdrawals wait in a FIFO queue."""

    kind = "staking"
    STATE_FIELDS = (
        "protocol_apr",
        "total_pooled_eth",
        "total_shares",
        "last_report",
        "queue_eth",
        "pending_loss",
        "bunker",
        "aprs",
        "ours_queued_eth",
    )

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.staking
        assert c is not None
        self.c = c
        self.protocol_apr = c.protocol_apr
        self.total_pooled_eth = c.total_pooled_eth
        self.total_shares = c.total_pooled_eth / 1.18  # a share rate near today's ~1.18 ETH/share
        self.last_report = epoch0
        self.queue_eth = c.queue_eth
        self.pending_loss = 0.0
        self.bunker = False
        self.aprs: deque[list[float]] = deque(maxlen=60)  # [timeUnix, userAPR] per report
        self.ours_queued_eth = 0.0

    def share_rate(self) -> float:
        return lido.share_rate(self.total_pooled_eth, self.total_shares)

    def next_report_after(self, t: float) -> float:
        day0 = math.floor(t / DAY) * DAY + self.c.report_hour_utc * 3600
        return day0 if day0 > t else day0 + DAY

    def base_apr(self, m: Market) -> float:
        if self.aprs:
            recent = [a for _, a in list(self.aprs)[-7:]]
            return lido.sma_apr(recent)
        return lido.user_apr_from_protocol_apr(self.protocol_apr, self.c.fee)

    def tvl_usd(self, m: Market) -> float:
        return self.total_pooled_eth * m.eth_price_usd()

    def step(self, t: float, dt: float, z: list[float], m: Market) -> float:
        dd = dt / DAY
        self.protocol_apr = max(
            0.0,
            ou_step(
                self.protocol_apr,
                self.c.protocol_apr_mean,
                self.c.protocol_apr_sigma,
                self.c.reversion_per_day,
                dd,
                z[0],
            ),
        )
        self.queue_eth = max(
            self.ours_queued_eth,
            ou_step(
                self.queue_eth,
                self.c.queue_mean_eth + self.ours_queued_eth,
                self.c.queue_sigma_eth,
                0.3,
                dd,
                z[1],
            ),
        )
        end = t + dt
        report = self.next_report_after(t)
        if report > end:
            return 1.0
        pre = self.share_rate()
        elapsed = max(report - self.last_report, 1.0)
        post = lido.post_rebase_share_rate(pre, self.protocol_apr, elapsed, self.c.fee)
        if self.pending_loss > 0:
            # socialised at this report; the fee is waived on a loss
            post *= 1.0 - self.pending_loss
            self.pending_loss = 0.0
        self.total_pooled_eth = post * self.total_shares
        self.aprs.append([report, lido.user_apr_from_share_rates(pre, post, elapsed)])
        self.last_report = report
        return post / pre

    def withdrawal_delay_seconds(self, amount_usd: float, t: float, m: Market) -> float:
        amount_eth = amount_usd / m.eth_price_usd()
        wait = lido.withdrawal_wait_seconds(
            max(amount_eth, 1e-9),
            self.queue_eth,
            self.c.buffer_eth,
            self.next_report_after(t) - t,
            bunker=self.bunker,
        )
        return wait

    def extra_row(self, m: Market) -> dict[str, Any]:
        return {
            "stablecoin": False,
            "ilRisk": "no",
            "exposure": "single",
            "underlyingTokens": ["0x0000000000000000000000000000000000000000"],
            "rewardTokens": None,
            "volumeUsd1d": None,
            "volumeUsd7d": None,
            "apyBase7d": None,
        }


# ---------------------------------------------------------------------------------------------
class LpVenue(VenueModel):
    """Uniswap v2 stable/WETH pair. The pool's USD value follows ``sqrt(r)`` of the WETH price
    ratio plus fees; our position is valued hedged (LP / HODL), so per step it grows by
    ``(1 + IL(r)) * (1 + fees * share / ours)``: fee APR minus LVR sigma^2/8 on average."""

    kind = "lp"
    STATE_FIELDS = ("tvl_others", "tvl_trend", "last_price", "volumes", "il_window")

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.lp
        assert c is not None
        self.c = c
        self.tvl_others = c.tvl_usd
        self.tvl_trend = c.tvl_usd
        self.last_price: float | None = None
        # [t_end, usd] per step, 7 days
        self.volumes: deque[list[float]] = deque(maxlen=7 * 24 * 12)
        self.il_window: deque[list[float]] = deque(maxlen=7 * 24 * 12)  # [t_end, price]
        self.sigma = mcfg.eth_price.sigma_annual

    def pool_tvl(self) -> float:
        return self.tvl_others + self.ours_usd

    def tvl_usd(self, m: Market) -> float:
        return self.pool_tvl()

    def volume_since(self, t_from: float) -> float:
        return sum(v for te, v in self.volumes if te > t_from)

    def volume_1d(self, m: Market) -> float:
        return self._windowed(m, 1.0)

    def _windowed(self, m: Market, days: float) -> float:
        if not self.volumes:
            return self.c.volume_usd_1d * days
        t = m.state_time
        first = self.volumes[0][0]
        covered = min(days * DAY, t - first + self._step_len())
        v = self.volume_since(t - days * DAY)
        return v * (days * DAY / covered) if covered > 0 else v

    def _step_len(self) -> float:
        if len(self.volumes) >= 2:
            return self.volumes[-1][0] - self.volumes[-2][0]
        return DAY

    def base_apr(self, m: Market) -> float:
        return uniswap.fee_apr(self.volume_1d(m), self.pool_tvl(), self.c.fee)

    def reward_apr(self, m: Market) -> float:
        inc = self.c.incentives
        per_day = decayed_per_day(
            inc.usd_per_day, inc.half_life_days, (m.state_time - self.epoch0) / DAY
        )
        return per_day * 365.0 / self.pool_tvl()

    def entry_cost_fraction(self, amount_usd: float, m: Market) -> float:
        if self.cfg.entry_fee_bps is not None:
            return self.cfg.entry_fee_bps / 10_000
        return uniswap.single_sided_entry_cost_fraction(amount_usd, self.pool_tvl(), self.c.fee)

    def available_usd(self, m: Market) -> float:
        # reserves always cover one LP's share; only a liquidity-crunch scenario caps exits
        return min(self.pool_tvl(), super().available_usd(m))

    def step(self, t: float, dt: float, z: list[float], m: Market) -> float:
        dd = dt / DAY
        price = m.token_price(self.chain, self.c.token1_symbol)
        prev = self.last_price if self.last_price is not None else price
        r = price / prev
        self.last_price = price
        sd_step = self.sigma * math.sqrt(dt / SPY)
        move = abs(math.log(r)) / (sd_step * math.sqrt(2.0 / math.pi)) if sd_step > 0 else 1.0
        vol = (
            self.c.volume_usd_1d
            * dd
            * math.exp(self.c.volume_sigma * z[0] - 0.5 * self.c.volume_sigma**2)
        )
        vol *= 0.5 + 0.5 * min(move, 6.0)  # volume rises with the price move (arbitrage flow)
        self.volumes.append([t + dt, vol])
        self.il_window.append([t + dt, price])
        tvl_before = self.pool_tvl()
        fees = vol * self.c.fee
        inc = self.c.incentives
        rewards = decayed_per_day(inc.usd_per_day, inc.half_life_days, (t - self.epoch0) / DAY) * dd
        value_ratio = uniswap.lp_value_ratio(r)
        fee_growth = 1.0 + fees / tvl_before if tvl_before > 0 else 1.0
        self.tvl_others *= value_ratio * fee_growth
        self.tvl_trend *= value_ratio * fee_growth
        x = math.log(self.tvl_others / self.tvl_trend)
        x = ou_step(
            x, 0.0, self.c.liquidity_log_sigma, self.c.liquidity_reversion_per_day, dd, z[1]
        )
        self.tvl_others = self.tvl_trend * math.exp(x)
        reward_growth = rewards / tvl_before if tvl_before > 0 else 0.0
        return (1.0 + uniswap.impermanent_loss(r)) * fee_growth + reward_growth

    def il_7d(self, m: Market) -> float | None:
        if not self.il_window:
            return None
        t = m.state_time
        old = next((p for te, p in self.il_window if te >= t - 7 * DAY), None)
        if old is None or self.last_price is None:
            return None
        return uniswap.impermanent_loss(self.last_price / old)

    def extra_row(self, m: Market) -> dict[str, Any]:
        chain_tokens = m.cfg.chains[self.chain].tokens
        v1 = self.volume_1d(m)
        v7 = self._windowed(m, 7.0)
        inc = self.c.incentives
        return {
            "stablecoin": False,
            "ilRisk": "yes",
            "exposure": "multi",
            "underlyingTokens": [
                chain_tokens[self.c.token0_symbol].address,
                chain_tokens[self.c.token1_symbol].address,
            ],
            "rewardTokens": [inc.reward_address] if inc.usd_per_day > 0 else None,
            "volumeUsd1d": v1,
            "volumeUsd7d": v7,
            "apyBase7d": uniswap.fee_apr_7d(v7, self.pool_tvl(), self.c.fee) * 100.0,
        }


# ---------------------------------------------------------------------------------------------
class BridgeArbVenue(VenueModel):
    """Stablecoin inventory on an Across route. Per year it earns
    ``N * max(0, q * (s * (1 - q/2C) - fee_pct(q)) - gas)`` with ``q = min(position, C (1 - fee/s))``,
    ``s = P_dst / P_src - 1`` from the per-chain token prices and ``fee_pct`` the Across LP +
    capital fee for ``q`` (:func:`protocols.across.arb_income_per_year_usd`)."""

    kind = "bridge_arb"
    STATE_FIELDS = ()

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.bridge_arb
        assert c is not None
        self.c = c
        rm = c.rate_model or mcfg.bridge.rate_model
        self.rate_model = across.RateModel(rm.ubar, rm.r0, rm.r1, rm.r2)
        self.round_trips_per_year = c.round_trips_per_day * 365.0

    def spread(self, m: Market) -> float:
        return (
            m.token_price(self.c.destination_chain, self.c.token)
            / m.token_price(self.c.origin_chain, self.c.token)
            - 1.0
        )

    def income_per_year(self, position_usd: float, m: Market) -> float:
        if self.halted or self.paused or position_usd <= 0:
            return 0.0
        q = min(position_usd, self.c.capacity_usd)
        fee = m.bridge_fee_pct(q, self.rate_model, include_gas=False)
        gas = m.cfg.chains[self.c.destination_chain].fill_gas_usd
        return across.arb_income_per_year_usd(
            position_usd, self.spread(m), fee, gas, self.c.capacity_usd, self.round_trips_per_year
        )

    REFERENCE_USD = 10_000.0

    def base_apr(self, m: Market) -> float:
        x = self.ours_usd if self.ours_usd > 0 else self.REFERENCE_USD
        return self.income_per_year(x, m) / x

    def tvl_usd(self, m: Market) -> float:
        return self.c.capacity_usd

    def available_usd(self, m: Market) -> float:
        return 0.0 if self.halted else super().available_usd(m)

    def step(self, t: float, dt: float, z: list[float], m: Market) -> float:
        if self.ours_usd <= 0:
            return 1.0
        return 1.0 + self.income_per_year(self.ours_usd, m) * dt / SPY / self.ours_usd

    def extra_row(self, m: Market) -> dict[str, Any]:
        chain_tokens = m.cfg.chains
        return {
            "stablecoin": True,
            "ilRisk": "no",
            "exposure": "single",
            "underlyingTokens": [
                chain_tokens[self.c.origin_chain].tokens[self.c.token].address,
                chain_tokens[self.c.destination_chain].tokens[self.c.token].address,
            ],
            "rewardTokens": None,
            "volumeUsd1d": None,
            "volumeUsd7d": None,
            "apyBase7d": None,
        }


# ---------------------------------------------------------------------------------------------
class FixedVenue(VenueModel):
    """Custodial earn product: flat APR accrued linearly, redemption after a delay, a quota."""

    kind = "fixed"
    STATE_FIELDS = ("apr", "can_redeem")

    def __init__(self, cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> None:
        super().__init__(cfg, mcfg, epoch0)
        c = cfg.fixed
        assert c is not None
        self.c = c
        self.apr = c.apr
        self.can_redeem = True

    def base_apr(self, m: Market) -> float:
        return self.apr

    def tvl_usd(self, m: Market) -> float:
        return self.c.quota_usd

    def deposit_limit_usd(self, m: Market) -> float:
        return max(0.0, self.c.quota_usd - self.ours_usd)

    def available_usd(self, m: Market) -> float:
        return 0.0 if not self.can_redeem else super().available_usd(m)

    def step(self, t: float, dt: float, z: list[float], m: Market) -> float:
        return 1.0 + self.apr * dt / SPY

    def withdrawal_delay_seconds(self, amount_usd: float, t: float, m: Market) -> float:
        return self.c.redemption_delay_seconds

    def extra_row(self, m: Market) -> dict[str, Any]:
        return {
            "stablecoin": True,
            "ilRisk": "no",
            "exposure": "single",
            "underlyingTokens": None,
            "rewardTokens": None,
            "volumeUsd1d": None,
            "volumeUsd7d": None,
            "apyBase7d": None,
        }


MODELS: dict[str, type[VenueModel]] = {
    "lending": LendingVenue,
    "staking": StakingVenue,
    "lp": LpVenue,
    "bridge_arb": BridgeArbVenue,
    "fixed": FixedVenue,
}


def build_venue(cfg: VenueMarketConfig, mcfg: MarketConfig, epoch0: float) -> VenueModel:
    return MODELS[cfg.kind](cfg, mcfg, epoch0)
