"""Prices in the simulated market: ETH, per-chain token prices (basis and depeg marks), and the
Across bridge's fees and limits per route (what ``/coins`` and ``/across`` serve, what the
bridge-arb venues earn against and what a paper bridge transfer pays)."""

from __future__ import annotations

from mockfeeds.state import MarketState
from mockfeeds.venues import BridgeArbVenue
from protocols import across


class Pricing(MarketState):
    """Token prices and the bridge's fee and limit quotes of the current world state."""

    def eth_price_usd(self) -> float:
        return self.eth_usd

    def venue_base_apr(self, venue_id: str) -> float:
        """A venue's marginal real APR now (a loop's collateral earns its staking venue's)."""
        return self.by_id[venue_id].base_apr(self)

    def token_price(self, chain: str, symbol: str) -> float:
        tok = self.cfg.chains[chain].tokens[symbol]
        key = f"{chain}:{symbol}"
        if tok.kind == "fixed":
            return tok.price_usd
        # a mark is a scenario's: a stable's depeg, an ETH derivative's discount (steth_discount)
        peg = tok.price_usd if tok.kind != "eth" else self.eth_usd
        base = peg * self.marks.get(key, 1.0)
        return base * (1.0 + self.basis_bps[key] / 10_000)

    def coin_key(self, chain: str, symbol: str) -> str:
        return f"{chain}:{self.cfg.chains[chain].tokens[symbol].address.lower()}"

    def bridge_fee_pct(
        self,
        amount_usd: float,
        rate_model: across.RateModel | None = None,
        *,
        include_gas: bool,
        to_chain: str | None = None,
    ) -> float:
        """Across ``totalRelayFee.pct`` for ``amount_usd`` (LP fee over the hub utilization move + capital fee
        [+ destination gas])."""
        b = self.cfg.bridge
        model = rate_model or across.RateModel(
            b.rate_model.ubar, b.rate_model.r0, b.rate_model.r1, b.rate_model.r2
        )
        liquid = b.hub_liquidity_usd * (1.0 - self.hub_u)
        utilized = b.hub_liquidity_usd * self.hub_u
        u1 = across.utilization_after(liquid, utilized, amount_usd)
        lp = across.lp_fee_pct(model, self.hub_u, u1)
        cap = across.capital_fee_pct(
            amount_usd,
            across.CapitalFeeConfig(
                b.capital_fee.lower_bound, b.capital_fee.upper_bound, b.capital_fee.cutoff
            ),
        )
        gas = (
            across.gas_fee_pct(self.cfg.chains[to_chain].fill_gas_usd, amount_usd)
            if include_gas and to_chain
            else 0.0
        )
        return lp + cap + gas

    def route_venue(self, from_chain: str, to_chain: str) -> BridgeArbVenue | None:
        for v in self.venues:
            if (
                isinstance(v, BridgeArbVenue)
                and v.c.origin_chain == from_chain
                and v.c.destination_chain == to_chain
            ):
                return v
        return None

    def route_limits_usd(self, from_chain: str, to_chain: str) -> dict[str, float]:
        """Across ``/limits`` for a route in USD. An arb venue's route reports its capacity as
        ``maxDepositInstant`` (what relayers fill at once); a halted route reports zeros."""
        b = self.cfg.bridge
        if (
            max(self.halted_chains.get(from_chain, 0.0), self.halted_chains.get(to_chain, 0.0))
            > self.state_time
        ):
            return dict.fromkeys(
                (
                    "minDeposit",
                    "maxDeposit",
                    "maxDepositInstant",
                    "maxDepositShortDelay",
                    "recommendedDepositInstant",
                ),
                0.0,
            )
        rv = self.route_venue(from_chain, to_chain)
        instant = (
            min(rv.c.capacity_usd, b.max_deposit_instant_usd)
            if rv is not None
            else b.max_deposit_instant_usd
        )
        short = max(b.max_deposit_short_delay_usd, instant)
        return {
            "minDeposit": b.min_deposit_usd,
            "maxDeposit": max(b.max_deposit_usd, short),
            "maxDepositInstant": instant,
            "maxDepositShortDelay": short,
            "recommendedDepositInstant": instant,
        }

    def route_rate_model(self, from_chain: str, to_chain: str) -> across.RateModel | None:
        rv = self.route_venue(from_chain, to_chain)
        return rv.rate_model if rv is not None else None
