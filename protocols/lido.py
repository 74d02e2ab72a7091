"""Lido stETH math: user APR from share-rate rebases, the 10 % fee, withdrawal-queue wait, slashing.

Pure functions, no I/O. Rates are annual decimals (0.03 is 3 %). Amounts in ETH.
Sources (``reference/protocol_math.md`` §3):

- APR: ``lidofinance/docs : docs/integrations/api.md`` (``TokenRebased`` share-rate formula) and
  the Lido fee split https://help.lido.fi/en/articles/5230596
- CL APR ceiling: consensus specs (``BASE_REWARD_FACTOR = 64``), derived in §3.1
- withdrawal queue: https://docs.lido.fi/contracts/withdrawal-queue-erc721 ,
  ``lidofinance/withdrawals-api : how-estimation-works.md``, Electra churn in
  ``ethereum/consensus-specs : specs/electra/beacon-chain.md`` (§3.3)
- slashing: ``ethereum/consensus-specs`` presets and ``specs/electra/beacon-chain.md`` (§3.4)
"""

from __future__ import annotations

import math

from protocols._checks import finite as _finite
from protocols._checks import non_negative as _non_negative
from protocols._checks import positive as _positive

SECONDS_PER_YEAR = 31_536_000  # Lido's API annualises with 365 days
SECONDS_PER_DAY = 86_400
PROTOCOL_FEE = 0.10  # 5 % node operators + 5 % DAO treasury (curated module)
SHARE_RATE_SCALE = 10**27  # preShareRate = preTotalEther * 1e27 / preTotalShares
EXIT_CHURN_ETH_PER_DAY = 57_600.0  # 256 ETH/epoch * 225 epochs/day (Electra, §3.3, derived)
# >= 256 epochs (~27 h) + ~2 d average sweep
WITHDRAWAL_SWEEP_DELAY_SECONDS = 256 * 384 + 2 * SECONDS_PER_DAY
# bunker mode delays finalisation ~14 frames (withdrawals-api)
BUNKER_EXTRA_SECONDS = 14 * SECONDS_PER_DAY
MAX_REQUEST_ETH = 1000.0  # WithdrawalQueue MAX_STETH_WITHDRAWAL_AMOUNT
EPOCHS_PER_YEAR = 82_181.25


def share_rate(total_pooled_ether: float, total_shares: float) -> float:
    """``shareRate = totalPooledEther / totalShares`` (ETH per share; the API scales it by 1e27).

    Source: ``lidofinance/docs : docs/integrations/api.md``. ValueError unless both are > 0.
    """
    return _positive("total_pooled_ether", total_pooled_ether) / _positive(
        "total_shares", total_shares
    )


def user_apr_from_share_rates(
    pre_share_rate: float, post_share_rate: float, time_elapsed_seconds: float
) -> float:
    """User APR between two rebases, as Lido's API computes it from ``TokenRebased``:

    ``userAPR = SECONDS_IN_YEAR * (postShareRate - preShareRate) / preShareRate / timeElapsed``

    Negative when the report shows a loss (slashing). Source: ``lidofinance/docs :
    docs/integrations/api.md``. ValueError on non-positive rates or elapsed time.
    """
    pre = _positive("pre_share_rate", pre_share_rate)
    post = _positive("post_share_rate", post_share_rate)
    dt = _positive("time_elapsed_seconds", time_elapsed_seconds)
    return SECONDS_PER_YEAR * (post - pre) / pre / dt


def user_apr_from_protocol_apr(protocol_apr: float, fee: float = PROTOCOL_FEE) -> float:
    """``userAPR = protocolAPR * (1 - fee)`` when rewards are positive; the fee is waived on a loss.

    Source: Lido fee split (help.lido.fi/en/articles/5230596); Lido analytics publish
    ``protocolAPR = userAPR / 0.9``. ValueError unless fee is in [0, 1).
    """
    apr = _finite("protocol_apr", protocol_apr)
    f = _finite("fee", fee)
    if not 0.0 <= f < 1.0:
        raise ValueError(f"fee must be in [0, 1), got {fee!r}")
    return apr * (1.0 - f) if apr > 0.0 else apr


def post_rebase_share_rate(
    pre_share_rate: float,
    protocol_apr: float,
    time_elapsed_seconds: float,
    fee: float = PROTOCOL_FEE,
) -> float:
    """Share rate after one oracle report that credits ``protocol_apr`` (gross) over the elapsed time.

    ``post = pre * (1 + userAPR * dt / SECONDS_IN_YEAR)`` with ``userAPR = (1 - fee) * protocolAPR``;
    the inverse of :func:`user_apr_from_share_rates`. **(derived)**
    """
    pre = _positive("pre_share_rate", pre_share_rate)
    dt = _non_negative("time_elapsed_seconds", time_elapsed_seconds)
    user = user_apr_from_protocol_apr(protocol_apr, fee)
    post = pre * (1.0 + user * dt / SECONDS_PER_YEAR)
    if post <= 0.0:
        raise ValueError(
            f"protocol_apr {protocol_apr!r} over {dt} s would make the share rate non-positive"
        )
    return post


def sma_apr(aprs: list[float] | tuple[float, ...]) -> float:
    """Simple moving average of per-rebase user APRs (``/v1/protocol/steth/apr/sma`` uses the last 7).

    Source: ``lidofinance/docs : docs/integrations/api.md``. ValueError on an empty list.
    """
    if len(aprs) == 0:
        raise ValueError("aprs must not be empty")
    return sum(_finite("aprs[]", a) for a in aprs) / len(aprs)


def consensus_apr_ceiling(total_staked_eth: float) -> float:
    """Maximum consensus-layer APR with perfect participation:

    ``CL_APR_max = BASE_REWARD_FACTOR * epochs_per_year / sqrt(TAB_gwei) ~= 166.3 / sqrt(total staked ETH)``

    (3.04 % at 30M ETH, 2.85 % at 34M). Source: consensus specs, derived in protocol_math.md §3.1.
    """
    tab_gwei = _positive("total_staked_eth", total_staked_eth) * 1e9
    return 64.0 * EPOCHS_PER_YEAR / math.sqrt(tab_gwei)


def withdrawal_wait_seconds(
    request_eth: float,
    queue_eth: float,
    buffer_eth: float,
    seconds_to_next_report: float,
    *,
    exit_churn_eth_per_day: float = EXIT_CHURN_ETH_PER_DAY,
    sweep_delay_seconds: float = WITHDRAWAL_SWEEP_DELAY_SECONDS,
    beacon_exit_queue_eth: float = 0.0,
    bunker: bool = False,
) -> float:
    """Seconds from a withdrawal request to its finalisation (claimable), FIFO behind ``queue_eth``.

    Requests finalise at daily oracle reports. If the buffer (deposits + EL rewards held by the
    protocol) covers the queue ahead plus this request, the request finalises at the next report.
    Otherwise validators must exit for the shortfall: the Ethereum exit queue drains
    ``exit_churn_eth_per_day`` (Electra: 256 ETH/epoch = 57,600 ETH/day), then exited balances
    need ``sweep_delay_seconds`` (>= 256 epochs ~ 27 h plus the withdrawal sweep), and finalisation
    waits for the next daily report after that. ``beacon_exit_queue_eth`` is ETH of every staker
    already waiting in the beacon chain's exit queue ahead of Lido's exits (~45 days of it in
    Sep 2025)::

        demand = queue + request
        wait = next_report                                                        if demand <= buffer
             = next_report + ceil_days(sweep + (exit_queue + demand - buffer) / churn)   otherwise
        wait += 14 days in bunker mode (mass slashing)

    Reproduces Lido's published ranges: < 1 day with enough buffer, 3–8 days for small requests
    without it, ~2 weeks for > 100k stETH behind a queue. Sources: protocol_math.md §3.3
    (docs.lido.fi withdrawal-queue-erc721, withdrawals-api how-estimation-works.md, Electra churn).
    """
    req = _positive("request_eth", request_eth)
    queue = _non_negative("queue_eth", queue_eth)
    buffer = _non_negative("buffer_eth", buffer_eth)
    nxt = _non_negative("seconds_to_next_report", seconds_to_next_report)
    if nxt > SECONDS_PER_DAY:
        raise ValueError(
            f"seconds_to_next_report must be <= one day (reports are daily), got {nxt!r}"
        )
    churn = _positive("exit_churn_eth_per_day", exit_churn_eth_per_day)
    sweep = _non_negative("sweep_delay_seconds", sweep_delay_seconds)
    backlog = _non_negative("beacon_exit_queue_eth", beacon_exit_queue_eth)
    demand = queue + req
    wait = nxt
    if demand > buffer:
        exit_seconds = sweep + (backlog + demand - buffer) / churn * SECONDS_PER_DAY
        wait = nxt + math.ceil(exit_seconds / SECONDS_PER_DAY) * SECONDS_PER_DAY
    if bunker:
        wait += BUNKER_EXTRA_SECONDS
    return float(wait)


def slashing_loss_fraction(
    slashed_validators: int,
    total_lst_eth: float,
    total_active_balance_eth: float,
    *,
    effective_balance_eth: float = 32.0,
    recently_slashed_eth: float | None = None,
    electra: bool = True,
    missed_duties_fraction: float = 0.003,
) -> float:
    """Fraction of all stETH lost when ``slashed_validators`` of Lido's validators are slashed.

    Per slashed validator the loss is its effective balance times
    ``initial + min(3 * S / TAB, 1) + missed duties`` with ``initial = 1/4096`` (Electra) or
    ``1/32`` (Bellatrix–Deneb), ``S`` = ETH slashed in the last ~36 days (default: this incident),
    ``TAB`` = total active balance, the factor 3 = ``PROPORTIONAL_SLASHING_MULTIPLIER_BELLATRIX``,
    missed duties ~0.3 % until the forced exit. The loss is socialised across stETH at the next
    report::

        loss_fraction = slashed_ETH * (initial + min(3 S / TAB, 1) + missed) / total_LST_ETH

    Source: ``ethereum/consensus-specs`` (§3.4 of protocol_math.md, "Mock guideline for an LST").
    Capped at 1. ValueError on negative counts or non-positive totals.
    """
    if (
        isinstance(slashed_validators, bool)
        or not isinstance(slashed_validators, int)
        or slashed_validators < 0
    ):
        raise ValueError(f"slashed_validators must be an int >= 0, got {slashed_validators!r}")
    lst = _positive("total_lst_eth", total_lst_eth)
    tab = _positive("total_active_balance_eth", total_active_balance_eth)
    eb = _positive("effective_balance_eth", effective_balance_eth)
    missed = _non_negative("missed_duties_fraction", missed_duties_fraction)
    slashed_eth = slashed_validators * eb
    s = (
        slashed_eth
        if recently_slashed_eth is None
        else _non_negative("recently_slashed_eth", recently_slashed_eth)
    )
    if slashed_eth > lst:
        raise ValueError(f"slashed ETH {slashed_eth} exceeds total_lst_eth {lst}")
    initial = 1.0 / 4096.0 if electra else 1.0 / 32.0
    per_validator = min(initial + min(3.0 * s / tab, 1.0) + missed, 1.0)
    return min(slashed_eth * per_validator / lst, 1.0)
