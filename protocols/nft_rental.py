"""NFT rental math: blue-chip NFTs bought at the collection floor and rented out by the day
(ERC-4907 ``setUser(tokenId, user, expires)``: the renter gets the ``user`` role until ``expires``,
ownership never moves), valued at a floor-price oracle, sold below floor to exit.

Pure functions, no I/O. Rates are annual decimals; prices in ETH per NFT.

- **Rent**: ``n`` NFTs listed at ``R`` ETH a day next to ``S`` listed by others, with renters
  wanting ``D`` NFT-days a day: occupancy ``o = min(1, D / (S + n))`` (rentals spread over the
  listed supply), rent ``365 R o n`` ETH a year (:func:`rent_income_eth`). Our listings lower the
  occupancy; income is concave and non-decreasing in ``n``: ``n`` while demand is unmet, then
  ``n D / (S + n)``.
- **Yield on the floor**: ``365 R o / P_floor``: 0.003 ETH a day on a 10 ETH floor at 80 %
  occupancy is 8.76 % a year (the 8-15 % the seed documents name for rented blue chips).
- **Floor risk**: the floor is a (log-normal) price with its own volatility, read from the
  oracle's history (:func:`realized_volatility`); annualised from daily rounds.
- **Exit**: selling into the collection's bids realises ``(1 - h)`` of the floor (the top bid sits
  below the lowest ask), and at most ``k`` of the ``sales_per_day`` can be ours without moving
  the floor: ``days = n / (k sales_per_day)`` (:func:`days_to_sell`).

Sources: ERC-4907 (``eips.ethereum.org/EIPS/eip-4907``: ``setUser``, ``userOf``,
``userExpires``, event ``UpdateUser``); rental listings in the shape of reNFT's lending entities
(``re-nft`` contracts: ``Lent``/``Rented`` events, ``dailyRentPrice``, ``maxRentDuration``,
``lentAmount``); floor from a Chainlink NFT Floor Price feed (AggregatorV3 ``latestRoundData``:
``roundId``, ``answer``, ``startedAt``, ``updatedAt``, ``answeredInRound``) and collection stats in
OpenSea API v2's ``/collections/{slug}/stats`` shape (``total.floor_price``, ``intervals[].sales``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from protocols._checks import FloatOrArray, as_float_array, finite, non_negative, out, positive

DAYS_PER_YEAR = 365


def occupancy(
    demand_nft_days_per_day: FloatOrArray, listed_others: float, ours: FloatOrArray
) -> FloatOrArray:
    """``o = min(1, D / (S + n))`` (1 when nothing is listed)."""
    d, scalar = as_float_array("demand_nft_days_per_day", demand_nft_days_per_day)
    n, _ = as_float_array("ours", ours)
    s = non_negative("listed_others", listed_others)
    total = s + np.maximum(n, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # D/tiny -> inf -> 1
        o = np.where(
            total > 0, np.minimum(1.0, np.maximum(d, 0.0) / np.where(total > 0, total, 1.0)), 1.0
        )
    return out(np.asarray(o, dtype=np.float64), scalar and np.ndim(ours) == 0)


def rent_income_eth(
    n_nfts: FloatOrArray,
    daily_rent_eth: float,
    demand_nft_days_per_day: float,
    listed_others: float,
) -> FloatOrArray:
    """Annual rent in ETH of ``n`` listed NFTs: ``365 R n min(1, D / (S + n))``.

    R = 0.003, D = 80, S = 100: one NFT earns 365 x 0.003 x 80/101 = 0.867 ETH a year."""
    n, scalar = as_float_array("n_nfts", n_nfts)
    n = np.maximum(n, 0.0)
    r = non_negative("daily_rent_eth", daily_rent_eth)
    o = np.asarray(
        occupancy(
            non_negative("demand_nft_days_per_day", demand_nft_days_per_day), listed_others, n
        )
    )
    return out(DAYS_PER_YEAR * r * n * o, scalar)


def rental_yield_apr(daily_rent_eth: float, floor_eth: float, occupancy_now: float) -> float:
    """``365 R o / P_floor``. 0.003 ETH/day, 10 ETH floor, 80 % occupancy: 8.76 %."""
    o = non_negative("occupancy_now", occupancy_now)
    if o > 1.0:
        raise ValueError(f"occupancy_now must be in [0, 1], got {occupancy_now!r}")
    return (
        DAYS_PER_YEAR
        * non_negative("daily_rent_eth", daily_rent_eth)
        * o
        / positive("floor_eth", floor_eth)
    )


def income_usd(
    x_usd: FloatOrArray,
    *,
    floor_usd: float,
    daily_rent_eth: float,
    eth_usd: float,
    demand_nft_days_per_day: float,
    listed_others: float,
) -> FloatOrArray:
    """Annual USD rent of ``x`` USD of NFTs bought at the floor: ``n = x / P_floor``,
    ``P_ETH x rent_income_eth(n)``. Concave and non-decreasing in ``x``."""
    x, scalar = as_float_array("x_usd", x_usd)
    n = np.maximum(x, 0.0) / positive("floor_usd", floor_usd)
    eth = np.asarray(rent_income_eth(n, daily_rent_eth, demand_nft_days_per_day, listed_others))
    return out(positive("eth_usd", eth_usd) * eth, scalar)


def days_to_sell(n_nfts: float, sales_per_day: float, max_share_of_sales: float = 0.25) -> float:
    """``n / (k sales_per_day)``: selling more than a share ``k`` of the daily floor sales would push
    the floor down. 10 NFTs into 8 sales a day at 25 %: 5 days."""
    n = non_negative("n_nfts", n_nfts)
    k = positive("max_share_of_sales", max_share_of_sales)
    if k > 1.0:
        raise ValueError(f"max_share_of_sales must be in (0, 1], got {max_share_of_sales!r}")
    s = non_negative("sales_per_day", sales_per_day)
    if n == 0.0:
        return 0.0
    if s == 0.0:
        return math.inf
    return n / (k * s)


def exit_proceeds_usd(value_at_floor_usd: float, haircut: float) -> float:
    """What selling realises: ``(1 - h)`` of the floor value (the top bid sits below the lowest ask)."""
    h = finite("haircut", haircut)
    if not 0.0 <= h < 1.0:
        raise ValueError(f"haircut must be in [0, 1), got {haircut!r}")
    return non_negative("value_at_floor_usd", value_at_floor_usd) * (1.0 - h)


def realized_volatility(floors: Sequence[float], seconds_between: float = 86_400.0) -> float:
    """Annualised log-return volatility of a floor series sampled every ``seconds_between``:
    ``sqrt(Σ ln(p_i/p_{i-1})² / (n - 1) x periods per year)`` (0 with fewer than 2 points)."""
    p = np.asarray([positive("floor", float(v)) for v in floors], dtype=np.float64)
    if len(p) < 2:
        return 0.0
    r = np.diff(np.log(p))
    per_year = 31_536_000.0 / positive("seconds_between", seconds_between)
    return float(math.sqrt(float(np.mean(r * r)) * per_year))
