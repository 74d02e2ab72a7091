"""The ``guards:`` section of the settings: one block per signal (threshold, window, action).

Every default names the real episode it was set from; ``guard/README.md`` has the table and the
calibration runs (``tests/test_guard_history.py`` replays the real files against these numbers).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from core.config import Strict
from core.types import VenueKind

Action = Literal["freeze", "exit", "pause"]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Ratio = Annotated[float, Field(gt=0, le=1)]

#: the guards judged per venue (each has its breaker; nav_drawdown and contagion come on top)
VENUE_GUARDS = (
    "depeg",
    "outflow",
    "withdrawability",
    "paused",
    "frozen",
    "slow_exit",
    "price_anomaly",
    "loss",
)

HOUR = 3600.0
DAY = 86_400.0


class SignalConfig(Strict):
    """What every signal has: on/off, the action a trip imposes, and the cool-down.

    A tripped breaker stays tripped while its signal fires and ``cooldown_seconds`` after it last
    fired; for ``exit`` and ``pause`` it also waits for an operator's resume.
    """

    enabled: bool = True
    action: Action = "freeze"
    cooldown_seconds: NonNegative = 6 * HOUR


class DepegConfig(SignalConfig):
    """|price / peg - 1| above ``threshold_bps`` on every observation for ``for_seconds``.

    200 bp: over 2020-12..2023-07 of daily closes, USDT never left 1 +- 150 bp, USDC and DAI left
    1 +- 200 bp only on 2023-03-11 (SVB: USDC 0.961, DAI 0.963); UST crossed it on 2022-05-08 at
    0.985 -> 0.94 on its way to 0.0064. One hour: a single-poll blip or an exchange flash crash
    (USDT 0.95 intraday on 2022-05-12, daily close 0.998) clears within it; SVB stayed below 0.98
    for ~40 h.
    """

    action: Action = "exit"
    threshold_bps: Positive = 200.0
    for_seconds: NonNegative = HOUR


class OutflowConfig(SignalConfig):
    """Others' TVL down more than ``drop_ratio`` from its high within ``window_seconds``.

    30 % in 6 h: on Aave v3 Ethereum 2023-01..2026-01 hourly, DAI lost 30 % of its supply within 6 h
    only on the SVB weekend (2023-03-10/11); USDC, USDT and WETH never did. Euler's exploit
    (2023-03-13) took ~$197M, most of its TVL, within an hour. Pools below ``min_tvl_usd`` are not
    judged (Aave v3's own launch week moved 30 % an hour on a few $M).
    """

    action: Action = "exit"
    drop_ratio: Ratio = 0.30
    window_seconds: Positive = 6 * HOUR
    min_tvl_usd: NonNegative = 50_000_000.0


class WithdrawabilityConfig(SignalConfig):
    """Utilization at or above ``utilization`` (or exit liquidity below ``exit_liquidity_ratio``
    x our position) on every observation for ``for_seconds``.

    0.99 for 6 h: Aave v3 Ethereum USDC touched 0.99 for single hours in the 2024-11/12 rate spikes
    (57 % supply APR on 2024-12-13) and came back within hours as the rate curve did its work;
    USDT sat above 0.99 through the SVB weekend (2023-03-11/12), when withdrawals waited on
    repayments.
    """

    action: Action = "freeze"
    utilization: Annotated[float, Field(gt=0, le=1)] = 0.99
    exit_liquidity_ratio: NonNegative = 1.0
    for_seconds: NonNegative = 6 * HOUR


class PausedConfig(SignalConfig):
    """A reserve paused or inactive, a product's redemptions closed, a route halted.

    Aave pauses a reserve on an exploit or a reported bug (Aave paused and froze several v2/v3
    markets in Nov 2023 after a bug report); FTX halted customer withdrawals on 2022-11-08 and
    never reopened. Nothing pays out while paused: exit (queued at once where there is a queue)
    as soon as it reopens.
    """

    action: Action = "exit"
    cooldown_seconds: NonNegative = HOUR


class FrozenConfig(SignalConfig):
    """A reserve frozen (no new supply) or a product closed for purchase: governance's warning.

    Aave governance froze reserves ahead of delisting (v2 CRV and others after the Nov 2022 bad
    debt, BUSD in 2023); existing suppliers could still leave, new supply was refused. Freeze:
    never grow it.
    """

    action: Action = "freeze"
    cooldown_seconds: NonNegative = HOUR


class SlowExitConfig(SignalConfig):
    """The quoted exit (Lido's withdrawal wait, Across' fill time) above ``ratio`` x its median
    over ``window_seconds``.

    4x: Lido's withdrawal wait is ~1-5 days in normal times and goes to weeks in a validator exit
    queue or bunker mode (slashing; +14 days in the simulated market); an Across fill quoted in
    seconds that falls back to the ~2 h slow fill is the other case. Not calibrated on real quote
    history (none in ../shared/data): the ratio is a judgement.
    """

    ratio: Annotated[float, Field(gt=1)] = 4.0
    window_seconds: Positive = DAY


class PriceAnomalyConfig(SignalConfig):
    """A jump of ``jump_sigma`` standard deviations between two polls, or two sources apart.

    Jump: |ln(p_t / p_{t-1})| > k x max(sigma_window, min_sigma_bps) where sigma is the standard
    deviation of the poll-to-poll log returns over ``window_seconds``. 8 sigma with a 10 bp floor:
    a stablecoin's poll-to-poll moves are a few bp, so the floor makes 80 bp the smallest jump that
    counts; USDC fell ~3 % within hours on 2023-03-10/11 (daily close 0.961). Not calibrated on
    intraday data (only daily closes in ../shared/data). Sources: the coins feed against the pool's own oracle price more than
    ``sources_bps`` apart; Mango (2022-10) and the many oracle-manipulation exploits show as an
    oracle that leaves the market price.
    """

    jump_sigma: Positive = 8.0
    min_sigma_bps: Positive = 10.0
    window_seconds: Positive = DAY
    sources_bps: Positive = 100.0


class LossConfig(SignalConfig):
    """A venue's realized return below its prediction by more than ``shortfall_bps`` of the
    position between two cycles.

    100 bp: a lending or staking position loses nothing between cycles when the protocol works
    (Lido's slashings, e.g. 20 validators in 2023-10, cost the pool a few ETH of ~9M); Euler's lenders
    (2023-03-13) lost most of their deposits in one block, the USDC depeg marked positions 4 %
    down (SVB).
    """

    action: Action = "exit"
    shortfall_bps: Positive = 100.0
    # Kinds whose value is marked to a market price move between cycles when the protocol works,
    # so their threshold is the move a calm market does not make. A 3.5x stETH loop's equity moves
    # 3.5x stETH/ETH (calm: a few bp a day; June 2022: 0.94, -21 % equity); a hedged LP keeps the
    # residual of its hedge (a few % of IL a volatile week); an ETH/stable LP holds half its value
    # in ETH (a 10 % ETH day marks it ~5 % down: 2022-06-13, ETH -15 %); an NFT floor moves 5-10 % a
    # day on calm weeks (Azuki 2023-06: -40 % in days).
    shortfall_bps_by_kind: dict[str, Positive] = Field(
        default_factory=lambda: {
            "loop": 500.0,
            "hedged_lp": 500.0,
            "lp": 1000.0,
            "nft_rental": 1500.0,
        }
    )

    @field_validator("shortfall_bps_by_kind")
    @classmethod
    def _known_kinds(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - {k.value for k in VenueKind})
        if unknown:
            raise ValueError(
                f"unknown venue kind {unknown[0]!r}; kinds: {', '.join(k.value for k in VenueKind)}"
            )
        return v

    def shortfall_bps_for(self, kind: str) -> float:
        return self.shortfall_bps_by_kind.get(str(kind), self.shortfall_bps)


class NavDrawdownConfig(SignalConfig):
    """The NAV more than ``drawdown_ratio`` below its high over ``window_seconds``: pause new risk.

    3 % in 24 h: a vault 40 % in USDC venues would have marked ~1.6 % down at SVB's low (0.961),
    the combined USDT 0.90 + 30 % Aave exploit of issue 10 took 13 %; ordinary yield noise (LP
    impermanent loss at sigma 0.65) is < 0.5 % of NAV a day at the default 25 % LP cap.
    """

    action: Action = "pause"
    drawdown_ratio: Ratio = 0.03
    window_seconds: Positive = DAY


class ContagionConfig(Strict):
    """A protocol-level trip (one of ``guards``, with ``freeze`` or ``exit``) on a venue of
    protocol P imposes the same on every venue with P among its exposures
    (``Venue.dependencies``); a staking venue's depeg counts as its protocol's (the LST is the
    protocol's own token): stETH's June 2022 discount hit every lending market holding stETH;
    Euler's exploit froze the protocols built on it (Balancer's bb-euler pools, Angle, Yearn).

    Outflow is not in the default list: on 2024-08-05 Aave v3 USDe lost 33 % of its supply in 6 h
    (USDe holders leaving during the market crash) while Aave itself was fine.
    """

    enabled: bool = True
    guards: tuple[str, ...] = ("paused", "loss")
    staking_depeg: bool = True

    @field_validator("guards")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(VENUE_GUARDS))
        if unknown:
            raise ValueError(f"unknown guard(s) {unknown}; known: {list(VENUE_GUARDS)}")
        return value


class ProtocolFlagsConfig(Strict):
    paused: PausedConfig = PausedConfig()
    frozen: FrozenConfig = FrozenConfig()
    slow_exit: SlowExitConfig = SlowExitConfig()


class GuardSettings(Strict):
    """The ``guards:`` section. ``enabled: false`` (``YIELDVAULT_GUARDS__ENABLED=false``) turns
    every guard off: no directives, for side-by-side runs."""

    enabled: bool = True
    # one history sample per venue at most this often (feed time); windows are read from it
    history_step_seconds: Positive = 900.0
    # the signals about our own position (exit liquidity below it, its loss) ignore a position
    # below this: the dust an exit leaves accruing is no exposure (optimizer.min_trade_usd is 100)
    min_position_usd: NonNegative = 100.0
    depeg: DepegConfig = DepegConfig()
    outflow: OutflowConfig = OutflowConfig()
    withdrawability: WithdrawabilityConfig = WithdrawabilityConfig()
    protocol_flags: ProtocolFlagsConfig = ProtocolFlagsConfig()
    price_anomaly: PriceAnomalyConfig = PriceAnomalyConfig()
    loss: LossConfig = LossConfig()
    nav_drawdown: NavDrawdownConfig = NavDrawdownConfig()
    contagion: ContagionConfig = ContagionConfig()

    def history_seconds(self) -> float:
        """How far back the per-venue history must reach for the longest enabled window."""
        return max(
            self.outflow.window_seconds,
            self.price_anomaly.window_seconds,
            self.protocol_flags.slow_exit.window_seconds,
        )
