"""The simulated market's rooms: no import circle between the venues and the market, and a venue
model steps against any object with the narrow ``MarketView`` members."""

from __future__ import annotations

import subprocess
import sys

from mockfeeds.config import DEFAULT_MARKET_PATH, load_market_yaml, parse_market_config
from mockfeeds.market import Market
from mockfeeds.venues import FixedVenue, build_venue
from protocols import across


def test_venues_import_without_the_market() -> None:
    code = (
        "import sys, mockfeeds.venues, mockfeeds.view; "
        "print(sorted(m for m in sys.modules if m.startswith('mockfeeds.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "mockfeeds.market" not in out
    assert "mockfeeds.venues.lending" in out


class _View:
    """The MarketView members and nothing else."""

    def __init__(self, market: Market) -> None:
        self.cfg = market.cfg
        self.state_time = market.state_time

    def eth_price_usd(self) -> float:
        return 3000.0

    def token_price(self, chain: str, symbol: str) -> float:
        return 1.0

    def bridge_fee_pct(
        self,
        amount_usd: float,
        rate_model: across.RateModel | None = None,
        *,
        include_gas: bool,
        to_chain: str | None = None,
    ) -> float:
        return 0.0


def test_a_venue_steps_against_a_narrow_view() -> None:
    cfg = parse_market_config(load_market_yaml(DEFAULT_MARKET_PATH))
    market = Market(cfg)
    fixed_cfg = next(v for v in cfg.venues if v.kind == "fixed")
    venue = build_venue(fixed_cfg, cfg, market.epoch0)
    assert isinstance(venue, FixedVenue)
    growth = venue.step(market.state_time, 86_400.0, [0.0] * 4, _View(market))
    assert growth == 1.0 + venue.apr * 86_400.0 / 31_536_000.0
    assert venue.base_apr(_View(market)) == venue.apr
