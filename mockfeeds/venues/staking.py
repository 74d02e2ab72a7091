"""Liquid staking (Lido) in the simulated market."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from mockfeeds.config import MarketConfig, VenueMarketConfig
from mockfeeds.venues.base import DAY, VenueModel, ou_step
from mockfeeds.view import MarketView
from protocols import lido


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

    def base_apr(self, m: MarketView) -> float:
        if self.aprs:
            recent = [a for _, a in list(self.aprs)[-7:]]
            return lido.sma_apr(recent)
        return lido.user_apr_from_protocol_apr(self.protocol_apr, self.c.fee)

    def tvl_usd(self, m: MarketView) -> float:
        return self.total_pooled_eth * m.eth_price_usd()

    def step(self, t: float, dt: float, z: list[float], m: MarketView) -> float:
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

    def withdrawal_delay_seconds(self, amount_usd: float, t: float, m: MarketView) -> float:
        amount_eth = amount_usd / m.eth_price_usd()
        wait = lido.withdrawal_wait_seconds(
            max(amount_eth, 1e-9),
            self.queue_eth,
            self.c.buffer_eth,
            self.next_report_after(t) - t,
            bunker=self.bunker,
        )
        return wait

    def extra_row(self, m: MarketView) -> dict[str, Any]:
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
