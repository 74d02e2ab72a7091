"""Generated markets for load tests and benchmarks: ``n`` venues of every kind across many chains,
and the daemon's venue configs that match them.

Deterministic in ``(n_venues, seed)``. Token, pair and comet addresses of the generated chains
are synthetic (hashes), not real contracts; the default market (``config/market.default.yaml``)
uses real addresses. Kinds are mixed 40 % lending (Aave v3 and Compound v3), 25 % LP, 10 %
staking, 15 % bridge-arbitrage routes, 10 % fixed-rate products.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from core.config import VenueConfig
from mockfeeds.config import parse_market_config

CHAINS: list[tuple[str, int, str, float, float]] = [
    # name, chain id, DefiLlama name, fill gas USD, instant fill seconds
    ("ethereum", 1, "Ethereum", 1.5, 60),
    ("arbitrum", 42161, "Arbitrum", 0.03, 10),
    ("base", 8453, "Base", 0.02, 10),
    ("optimism", 10, "Optimism", 0.02, 12),
    ("polygon", 137, "Polygon", 0.01, 30),
    ("avalanche", 43114, "Avalanche", 0.05, 20),
    ("bsc", 56, "BSC", 0.03, 15),
    ("gnosis", 100, "Gnosis", 0.01, 40),
    ("scroll", 534352, "Scroll", 0.05, 30),
    ("zksync", 324, "zkSync Era", 0.05, 30),
    ("linea", 59144, "Linea", 0.05, 30),
    ("mantle", 5000, "Mantle", 0.02, 30),
    ("blast", 81457, "Blast", 0.02, 15),
    ("mode", 34443, "Mode", 0.02, 15),
    ("unichain", 130, "Unichain", 0.02, 10),
    ("sonic", 146, "Sonic", 0.02, 10),
]
STABLES = ["USDC", "USDT", "DAI", "USDE", "FRAX", "LUSD", "GHO", "PYUSD", "USDS", "CRVUSD"]
LST_PROTOCOLS = [
    "rocket-pool",
    "stakewise-v3",
    "frax-ether",
    "coinbase-wrapped-staked-eth",
    "binance-staked-eth",
    "mantle-staked-eth",
    "swell-liquid-staking",
    "stader",
    "ether.fi-stake",
    "kelp",
]
DEX_PROTOCOLS = [
    "uniswap-v2",
    "sushiswap",
    "pancakeswap-amm",
    "quickswap-dex",
    "camelot-v2",
    "aerodrome-v1",
]
KIND_SHARES = [
    ("lending", 0.40),
    ("lp", 0.25),
    ("staking", 0.10),
    ("bridge_arb", 0.15),
    ("fixed", 0.10),
]

# real addresses where they exist (the default market's chains)
REAL_TOKENS: dict[tuple[str, str], str] = {
    ("ethereum", "USDC"): "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
    ("ethereum", "USDT"): "0xdac17f958d2ee523a2206206994597c13d831ec7",
    ("ethereum", "DAI"): "0x6b175474e89094c44da98b954eedeac495271d0f",
    ("ethereum", "WETH"): "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
    ("arbitrum", "USDC"): "0xaf88d065e77c8cc2239327c5edb3a432268e5831",
    ("arbitrum", "WETH"): "0x82af49447d8a07e3bd95bd0d56f35241523fbab1",
    ("base", "USDC"): "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
    ("base", "WETH"): "0x4200000000000000000000000000000000000006",
    ("optimism", "USDC"): "0x0b2c639c533813f4aa9d7837caf62653d097ff85",
    ("optimism", "WETH"): "0x4200000000000000000000000000000000000006",
    ("polygon", "USDC"): "0x3c499c542cef5e3811e1192ce70d8cc03d5c3359",
    ("polygon", "WETH"): "0x7ceb23fd6bc0add59e62ac25578270cff1b9f619",
}


def _addr(*parts: object) -> str:
    return "0x" + hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:40]


def _token(chain: str, sym: str) -> str:
    return REAL_TOKENS.get((chain, sym), _addr("token", chain, sym))


def _counts(n: int) -> dict[str, int]:
    counts = {k: math.floor(n * s) for k, s in KIND_SHARES}
    kinds = [k for k, _ in KIND_SHARES]
    i = 0
    while sum(counts.values()) < n:  # hand out the remainder, one per kind in order
        counts[kinds[i % len(kinds)]] += 1
        i += 1
    return counts


def generate_market(n_venues: int, seed: int) -> dict[str, Any]:
    """A market config (the YAML's dict) with ``n_venues`` venues across kinds and 16 chains.

    ValueError unless ``1 <= n_venues <= 5000``. The result validates with
    :func:`mockfeeds.config.parse_market_config`; pass it to ``Market.from_config``.
    """
    if isinstance(n_venues, bool) or not isinstance(n_venues, int) or not 1 <= n_venues <= 5000:
        raise ValueError(f"n_venues must be an int in [1, 5000], got {n_venues!r}")
    rng = np.random.default_rng(seed)
    chains: dict[str, Any] = {}
    for name, cid, llama, gas, fill in CHAINS:
        tokens: dict[str, Any] = {
            s: {
                "address": _token(name, s),
                "decimals": 6 if s in ("USDC", "USDT", "PYUSD") else 18,
                "kind": "stable",
            }
            for s in STABLES
        }
        tokens["WETH"] = {
            "address": _token(name, "WETH"),
            "decimals": 18,
            "kind": "eth",
            "deviation_sigma_bps": 3,
        }
        chains[name] = {
            "chain_id": cid,
            "defillama_name": llama,
            "fill_gas_usd": gas,
            "instant_fill_seconds": fill,
            "tokens": tokens,
        }
    names = [c[0] for c in CHAINS]
    counts = _counts(n_venues)
    venues: list[dict[str, Any]] = []

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    # lending: Aave markets "{chain}", "{chain}-2", ... (<= 10 reserves each) and Compound comets
    slots = [(c, k, s) for k in range(1, 100) for c in names for s in STABLES]
    for i in range(counts["lending"]):
        chain, k, sym = slots[i]
        market = chain if k == 1 else f"{chain}-{k}"
        compound = i % 4 == 3
        proto = "compound-v3" if compound else "aave-v3"
        vid = f"{proto.split('-')[0]}-{sym.lower()}-{market}"
        lending: dict[str, Any] = {
            "market": market,
            "underlying": _token(chain, sym),
            "decimals": chains[chain]["tokens"][sym]["decimals"],
            "strategy": "ethereum-usdc-2026-02" if sym != "DAI" else "ethereum-dai-2026-02",
            "total_supply_usd": float(10 ** u(7.0, 9.0)),
            "utilization": (um := u(0.6, 0.9)),
            "utilization_mean": um,
            "utilization_sigma": u(0.02, 0.06),
            "incentives": {
                "usd_per_day": float(rng.choice([0.0, 0.0, u(100, 5000)])),
                "half_life_days": u(30, 180),
            },
        }
        if compound:
            lending["comet"] = _addr("comet", market, sym)
            lending["incentives"] = {
                **lending["incentives"],
                "reward_symbol": "COMP",
                "reward_address": "0xc00e94cb662c3520282e6f5717214004a7f26888",
                "reward_price_usd": 45.0,
            }
        venues.append(
            {
                "id": vid,
                "kind": "lending",
                "protocol": proto,
                "chain": chain,
                "asset": sym,
                "risk_score": round(u(1.5, 4.0), 1),
                "lending": lending,
            }
        )
    for i in range(counts["lp"]):
        chain = names[i % len(names)]
        sym = STABLES[(i // len(names)) % len(STABLES)]
        dex = DEX_PROTOCOLS[(i // (len(names) * len(STABLES))) % len(DEX_PROTOCOLS)]
        gen = i // (len(names) * len(STABLES) * len(DEX_PROTOCOLS))
        vid = f"{dex}-{sym.lower()}-weth-{chain}" + (f"-{gen + 1}" if gen else "")
        tvl = float(10 ** u(6.5, 8.5))
        venues.append(
            {
                "id": vid,
                "kind": "lp",
                "protocol": dex,
                "chain": chain,
                "asset": f"{sym}-WETH",
                "risk_score": round(u(4.0, 7.0), 1),
                "lp": {
                    "pair_address": _addr("pair", vid),
                    "token0_symbol": sym,
                    "token1_symbol": "WETH",
                    "tvl_usd": tvl,
                    "volume_usd_1d": tvl * u(0.02, 0.3),
                },
            }
        )
    for i in range(counts["staking"]):
        if i == 0:
            venues.append(
                {
                    "id": "lido-steth",
                    "kind": "staking",
                    "protocol": "lido",
                    "chain": "ethereum",
                    "asset": "stETH",
                    "risk_score": 2.0,
                    "defillama": {
                        "pool": "747c1d2a-c668-4682-b9f9-296708a3dd90",
                        "project": "lido",
                        "symbol": "STETH",
                    },
                    "staking": {},
                }
            )
            continue
        proto = LST_PROTOCOLS[i % len(LST_PROTOCOLS)]
        chain = names[(i // len(LST_PROTOCOLS)) % len(names)]
        vid = f"{proto}-{chain}-{i}"
        apr = u(0.028, 0.038)
        venues.append(
            {
                "id": vid,
                "kind": "staking",
                "protocol": proto,
                "chain": chain,
                "asset": "ETH",
                "risk_score": round(u(2.5, 5.0), 1),
                "staking": {
                    "total_pooled_eth": float(10 ** u(4.0, 6.0)),
                    "protocol_apr": apr,
                    "protocol_apr_mean": apr,
                    "token_address": _addr("lst", vid),
                },
            }
        )
    routes = [(a, b) for a in names for b in names if a != b]
    for i in range(counts["bridge_arb"]):
        a, b = routes[i % len(routes)]
        gen = i // len(routes)
        vid = f"across-usdc-{a}-{b}" + (f"-{gen + 1}" if gen else "")
        venues.append(
            {
                "id": vid,
                "kind": "bridge_arb",
                "protocol": "across",
                "chain": a,
                "asset": "USDC",
                "risk_score": 3.0,
                "defillama": {
                    "project": "across",
                    "symbol": "USDC",
                    "pool_meta": f"arb route {a}->{b}",
                },
                "bridge_arb": {
                    "origin_chain": a,
                    "destination_chain": b,
                    "capacity_usd": float(round(10 ** u(5.0, 6.3), -3)),
                    "round_trips_per_day": round(u(1.0, 4.0), 2),
                    # routeRateModel: L2->L2 routes charge ~no LP fee below the kink (protocol_math §5.1)
                    **(
                        {"rate_model": {"ubar": 0.75, "r0": 0.0, "r1": 0.0, "r2": 0.6}}
                        if "ethereum" not in (a, b)
                        else {}
                    ),
                },
            }
        )
    for i in range(counts["fixed"]):
        sym = STABLES[i % len(STABLES)]
        pid = f"{sym}{i + 1:03d}"
        venues.append(
            {
                "id": f"earn-{pid.lower()}",
                "kind": "fixed",
                "protocol": "binance-earn",
                "chain": "ethereum",
                "asset": sym,
                "risk_score": 5.0,
                "defillama": {
                    "project": "binance-earn",
                    "symbol": sym,
                    "pool_meta": f"Simple Earn flexible {pid}",
                },
                "fixed": {
                    "product_id": pid,
                    "apr": round(u(0.02, 0.08), 4),
                    "redemption_delay_seconds": 86400.0,
                    "quota_usd": float(round(10 ** u(6.0, 8.0), -3)),
                },
            }
        )
    return {
        "seed": int(seed),
        "time_scale": 3600.0,
        "tick_seconds": 3600.0,
        "start_time": "2026-02-01T00:00:00Z",
        "history_days": 7,
        "save_interval_seconds": 5.0,
        "chains": chains,
        "venues": venues,
    }


def _chain_costs(chain_gas_usd: float) -> dict[str, float]:
    # a supply/withdraw costs ~ 150k gas; the relayer fill (~ 100k gas) prices gas per chain
    return {
        "deposit_usd": round(chain_gas_usd * 1.5, 4),
        "withdraw_usd": round(chain_gas_usd * 1.5, 4),
    }


def daemon_venues(market_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The daemon's ``venues:`` entries (``core.config.VenueConfig`` dicts) for a market config:
    ids, kinds and chains as in the market, the adapter that reads each venue and its params.

    Lido -> ``lido``; Aave -> ``aave_v3`` {market, asset}; Compound -> ``compound_v3`` {chain, comet};
    other staking and LPs -> ``defillama`` {pool[, price_coin]}; bridge routes -> ``across``
    {chain ids, tokens, price coins, round_trips_per_day}; fixed -> ``fixed`` {product_id, quota_usd}.
    Every dict validates as a ``VenueConfig``.
    """
    from mockfeeds.generate_kinds import composite_entry  # routes import the market, like app

    cfg = parse_market_config(market_cfg)
    out: list[dict[str, Any]] = []
    for v in cfg.venues:
        chain = cfg.chains[v.chain]
        costs: dict[str, float] = _chain_costs(chain.fill_gas_usd)
        exit_days = 0.0
        deps: list[str] = []
        if v.kind == "staking":
            if v.protocol == "lido":
                feed: dict[str, Any] = {"adapter": "lido"}
            else:
                feed = {"adapter": "defillama", "params": {"pool": v.pool_uuid}}
            exit_days = 3.0
        elif v.kind == "lending":
            lc = v.lending
            assert lc is not None
            if v.protocol.startswith("compound"):
                feed = {"adapter": "compound_v3", "params": {"chain": v.chain, "comet": lc.comet}}
            else:
                feed = {"adapter": "aave_v3", "params": {"market": lc.market, "asset": v.asset}}
        elif v.kind == "lp":
            lp = v.lp
            assert lp is not None
            weth = chain.tokens[lp.token1_symbol].address
            feed = {
                "adapter": "defillama",
                "params": {"pool": v.pool_uuid, "price_coin": f"{v.chain}:{weth}", "fee": lp.fee},
            }
            costs["fee_bps"] = lp.fee * 10_000 / 2  # half the deposit is swapped at the pool fee
        elif v.kind == "bridge_arb":
            b = v.bridge_arb
            assert b is not None
            o, d = cfg.chains[b.origin_chain], cfg.chains[b.destination_chain]
            ot, dt = o.tokens[b.token], d.tokens[b.token]
            feed = {
                "adapter": "across",
                "params": {
                    "origin_chain_id": o.chain_id,
                    "destination_chain_id": d.chain_id,
                    "input_token": ot.address,
                    "output_token": dt.address,
                    "origin_price_coin": f"{b.origin_chain}:{ot.address}",
                    "destination_price_coin": f"{b.destination_chain}:{dt.address}",
                    "input_decimals": ot.decimals,
                    "round_trips_per_day": b.round_trips_per_day,
                },
            }
            exit_days = 0.01
            costs = {"deposit_usd": 0.5, "withdraw_usd": 0.5}
        elif v.kind in ("loop", "hedged_lp", "nft_rental"):
            feed, exit_days, deps, costs = composite_entry(v, cfg, costs)
        else:
            fc = v.fixed
            assert fc is not None
            feed = {
                "adapter": "fixed",
                "params": {"product_id": fc.product_id, "quota_usd": fc.quota_usd},
            }
            exit_days = fc.redemption_delay_seconds / 86_400.0
            costs = {"deposit_usd": 1.0, "withdraw_usd": 1.0}
        row = {
            "id": v.id,
            "kind": v.kind,
            "protocol": v.protocol,
            "chain": v.chain,
            "asset": v.asset,
            "risk_score": v.risk_score,
            "dependencies": deps,
            "exit_days": exit_days,
            "costs": costs,
            "feed": feed,
        }
        VenueConfig.model_validate(row)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m mockfeeds.generate --venues 1000 --seed 1 [--daemon-venues] > file.yaml``:
    print a generated market YAML (for ``yieldvault mock-feeds --market``), or with
    ``--daemon-venues`` the matching ``venues:`` block for the daemon's config."""
    import argparse
    import sys

    import yaml

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--venues", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--daemon-venues", action="store_true", help="print the daemon's venues: block instead"
    )
    a = p.parse_args(argv)
    market = generate_market(a.venues, a.seed)
    out = {"venues": daemon_venues(market)} if a.daemon_venues else market
    yaml.safe_dump(out, sys.stdout, sort_keys=False, width=200)


if __name__ == "__main__":
    main()
