"""The guard step of the cycle: snapshots + portfolio + prior state -> directives + new state.

``Guards(settings)(snapshots, portfolio, now, state) -> (Directives, GuardState)`` is pure: the
state goes in and comes out as a value (the daemon persists it, ``vault/guard_store.py``), so a
replay or a restart decides as an uninterrupted run would.

Per venue and cycle: read a :class:`~guard.signals.Sample` from the snapshot (a frozen snapshot,
the last good one of a failing feed, is not read: stale numbers are no evidence), run every
enabled signal, step its breaker, then derive contagion and the NAV drawdown breaker. Directives
are the union of the active breakers' actions:

* ``exit`` -> ``Directives.exit`` (target 0, fastest first, gate bypassed, checker kept);
* ``freeze`` -> ``Directives.freeze`` (may shrink, never grow);
* ``pause`` -> ``Directives.no_new_deposits``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from core.types import MARKET_VALUED_KINDS, Directives, PortfolioState, VenueKind, VenueSnapshot
from guard import signals
from guard.breaker import Breaker, BreakerState, Event, EventKind, resume, step
from guard.config import VENUE_GUARDS, Action, GuardSettings

PORTFOLIO = "*"
GUARDS = (*VENUE_GUARDS, "nav_drawdown", "contagion")
_SEVERITY: dict[str, int] = {"freeze": 1, "exit": 2}


@dataclass(frozen=True, slots=True)
class GuardState:
    """Everything the guards remember between cycles (persisted as one JSON value).

    ``history``: per venue, one sample per ``history_step_seconds`` over the longest window;
    ``last``: the last reading per venue (jumps and losses are judged between cycles);
    ``nav``: (time, NAV) samples over the drawdown window; ``contagion``: target venue ->
    (source venue, guard, action) while a source breaker is active; ``earned``: the books' yield
    per venue at the last cycle; ``events``: this step's (not persisted).
    """

    breakers: Mapping[tuple[str, str], Breaker] = field(default_factory=dict)
    history: Mapping[str, tuple[signals.Sample, ...]] = field(default_factory=dict)
    last: Mapping[str, signals.Sample] = field(default_factory=dict)
    nav: tuple[tuple[float, float], ...] = ()
    last_nav: tuple[float, float] | None = None
    contagion: Mapping[str, tuple[str, str, Action]] = field(default_factory=dict)
    earned: Mapping[str, float] = field(
        default_factory=dict
    )  # PortfolioState.earned_usd, last cycle
    events: tuple[Event, ...] = ()


EMPTY = GuardState()


class Guards:
    """The guard hook of the shared cycle. See the module docstring."""

    def __init__(self, settings: GuardSettings):
        self.settings = settings

    def __call__(
        self,
        snapshots: Sequence[VenueSnapshot],
        portfolio: PortfolioState,
        now: datetime,
        state: GuardState | None,
    ) -> tuple[Directives, GuardState]:
        state = state or EMPTY
        if not self.settings.enabled:
            return Directives(), replace(state, events=())
        cfg = self.settings
        t = now.timestamp()
        breakers = dict(state.breakers)
        history = dict(state.history)
        last = dict(state.last)
        events: list[Event] = []
        nav = portfolio.nav_usd
        nav_drop = state.last_nav[1] - nav if state.last_nav is not None else 0.0

        def run(venue: str, guard: str, reading: signals.Reading | None, sc: object) -> None:
            action: Action = sc.action  # type: ignore[attr-defined]
            if reading is None and (venue, guard) not in breakers:
                return  # nothing to judge and nothing to remember
            b = breakers.get((venue, guard), Breaker(action=action))
            if b.action != action and not b.active:
                b = replace(b, action=action)
            b2, kind = step(
                b,
                reading,
                t,
                for_seconds=getattr(sc, "for_seconds", 0.0),
                cooldown_seconds=sc.cooldown_seconds,  # type: ignore[attr-defined]
            )
            breakers[(venue, guard)] = b2
            if kind is not None and reading is not None:
                events.append(
                    Event(
                        kind,
                        venue,
                        guard,
                        b2.action,
                        t,
                        reading.detail,
                        tuple(sorted(reading.evidence.items())),
                    )
                )

        for snap in snapshots:
            vid = snap.venue.id
            if snap.frozen:
                continue
            now_s = signals.sample(snap, float(portfolio.positions_usd.get(vid, 0.0)))
            hist = history.get(vid, ())
            prev = last.get(vid)
            kind = snap.venue.kind
            if cfg.depeg.enabled:
                run(vid, "depeg", signals.depeg(cfg.depeg, now_s), cfg.depeg)
            if cfg.outflow.enabled:
                run(vid, "outflow", signals.outflow(cfg.outflow, kind, hist, now_s), cfg.outflow)
            if cfg.withdrawability.enabled:
                w = cfg.withdrawability
                r = signals.withdrawability(w, now_s, cfg.min_position_usd)
                run(vid, "withdrawability", r, w)
            pf = cfg.protocol_flags
            if pf.paused.enabled:
                run(vid, "paused", signals.paused(pf.paused, snap), pf.paused)
            if pf.frozen.enabled:
                run(vid, "frozen", signals.frozen(pf.frozen, snap), pf.frozen)
            if pf.slow_exit.enabled:
                r = signals.slow_exit(pf.slow_exit, hist, now_s)
                run(vid, "slow_exit", r, pf.slow_exit)
            if cfg.price_anomaly.enabled:
                r = signals.price_anomaly(cfg.price_anomaly, hist, prev, now_s)
                run(vid, "price_anomaly", r, cfg.price_anomaly)
            if cfg.loss.enabled:
                earned = None
                if vid in portfolio.earned_usd and vid in state.earned:
                    earned = portfolio.earned_usd[vid] - state.earned[vid]
                r = signals.loss(
                    cfg.loss.shortfall_bps_for(kind),
                    prev,
                    now_s,
                    nav_drop,
                    earned,
                    cfg.min_position_usd,
                )
                run(vid, "loss", r, cfg.loss)
            last[vid] = now_s
            history[vid] = _append(hist, now_s, cfg.history_step_seconds, cfg.history_seconds())

        if cfg.nav_drawdown.enabled:
            r = signals.nav_drawdown(cfg.nav_drawdown, state.nav, t, nav)
            run(PORTFOLIO, "nav_drawdown", r, cfg.nav_drawdown)
        nav_hist = state.nav
        if not nav_hist or t - nav_hist[-1][0] >= cfg.history_step_seconds:
            keep = t - cfg.nav_drawdown.window_seconds
            nav_hist = (*[x for x in nav_hist if x[0] >= keep], (t, nav))

        contagion = self._contagion(snapshots, breakers) if cfg.contagion.enabled else {}
        for target, (src, guard, action) in contagion.items():
            if target not in state.contagion:
                detail = f"{src} tripped {guard}: {breakers[(src, guard)].evidence}"
                events.append(Event(EventKind.TRIP, target, "contagion", action, t, detail))
        for target, (_, _, action) in state.contagion.items():
            if target not in contagion:
                events.append(
                    Event(EventKind.CLOSE, target, "contagion", action, t, "source closed")
                )

        new = GuardState(
            breakers=breakers,
            history=history,
            last=last,
            nav=nav_hist,
            last_nav=(t, nav),
            contagion=contagion,
            earned={**state.earned, **portfolio.earned_usd},
            events=tuple(events),
        )
        return directives(new), new

    def _contagion(
        self, snapshots: Sequence[VenueSnapshot], breakers: Mapping[tuple[str, str], Breaker]
    ) -> dict[str, tuple[str, str, Action]]:
        """Target -> (source, guard, action): a protocol-level trip (``contagion.guards``; a
        staking venue's depeg is its own token's) of a venue whose protocol is P spreads its
        freeze or exit to every other venue with P in ``Venue.exposures``. A ``loss`` of a
        :data:`MARKET_VALUED_KINDS` venue is its own: its value moves with prices while P works."""
        venues = {s.venue.id: s.venue for s in snapshots}
        out: dict[str, tuple[str, str, Action]] = {}
        for (src, guard), b in sorted(breakers.items()):
            if not b.active or b.action not in _SEVERITY or src not in venues:
                continue
            source = venues[src]
            c = self.settings.contagion
            protocol_level = (
                guard in c.guards and not (guard == "loss" and source.kind in MARKET_VALUED_KINDS)
            ) or (c.staking_depeg and guard == "depeg" and source.kind is VenueKind.STAKING)
            if not protocol_level:
                continue
            for target in venues.values():
                if target.id == src or source.protocol not in target.exposures:
                    continue
                have = out.get(target.id)
                if have is None or _SEVERITY[b.action] > _SEVERITY[have[2]]:
                    out[target.id] = (src, guard, b.action)
        return out

    def resume(
        self, state: GuardState, now: datetime, venue: str | None = None, guard: str | None = None
    ) -> tuple[GuardState, list[tuple[str, str]]]:
        """The operator's resume of every active breaker matching ``venue`` and ``guard`` (None:
        any); a breaker whose cool-down has passed and whose signal is clear closes at once."""
        return apply_resume(self.settings, state, now, venue, guard)


def apply_resume(
    settings: GuardSettings,
    state: GuardState,
    now: datetime,
    venue: str | None = None,
    guard: str | None = None,
) -> tuple[GuardState, list[tuple[str, str]]]:
    t = now.timestamp()
    breakers = dict(state.breakers)
    events = list(state.events)
    hit: list[tuple[str, str]] = []
    for key, b in sorted(state.breakers.items()):
        if not b.active or (venue not in (None, key[0])) or (guard not in (None, key[1])):
            continue
        b2 = resume(b)
        cooldown = _cooldown(settings, key[1])
        fired = b2.last_fired_at if b2.last_fired_at is not None else t
        if b2.state is BreakerState.COOLING and t - fired >= cooldown:
            b2 = replace(b2, state=BreakerState.CLOSED, resumed=False, evidence="")
        breakers[key] = b2
        hit.append(key)
        events.append(Event(EventKind.RESUME, key[0], key[1], b2.action, t, b2.state.value))
    return replace(state, breakers=breakers, events=tuple(events)), hit


def _cooldown(settings: GuardSettings, guard: str) -> float:
    pf = settings.protocol_flags
    table = {
        "depeg": settings.depeg,
        "outflow": settings.outflow,
        "withdrawability": settings.withdrawability,
        "paused": pf.paused,
        "frozen": pf.frozen,
        "slow_exit": pf.slow_exit,
        "price_anomaly": settings.price_anomaly,
        "loss": settings.loss,
        "nav_drawdown": settings.nav_drawdown,
    }
    sc = table.get(guard)
    return sc.cooldown_seconds if sc is not None else 0.0


def directives(state: GuardState) -> Directives:
    """The union of the active breakers' actions (and of contagion)."""
    exit_: set[str] = set()
    freeze: set[str] = set()
    pause = False
    reasons: dict[str, list[str]] = {}
    for (venue, guard), b in sorted(state.breakers.items()):
        if not b.active:
            continue
        if b.action == "pause":
            pause = True
        elif b.action == "exit":
            exit_.add(venue)
        else:
            freeze.add(venue)
        reasons.setdefault(venue, []).append(f"{guard} {b.state.value}: {b.evidence}")
    for target, (src, guard, action) in sorted(state.contagion.items()):
        (exit_ if action == "exit" else freeze).add(target)
        reasons.setdefault(target, []).append(f"contagion from {src} ({guard})")
    freeze -= exit_
    return Directives(
        freeze=frozenset(freeze - {PORTFOLIO}),
        exit=frozenset(exit_ - {PORTFOLIO}),
        no_new_deposits=pause,
        reasons={k: "; ".join(v) for k, v in reasons.items()},
    )


def _append(
    hist: tuple[signals.Sample, ...], s: signals.Sample, step_seconds: float, keep_seconds: float
) -> tuple[signals.Sample, ...]:
    if hist and s.t - hist[-1].t < step_seconds:
        return hist
    cutoff = s.t - keep_seconds
    return (*[x for x in hist if x.t >= cutoff], s)


def active(state: GuardState) -> Iterable[tuple[str, str, Breaker]]:
    for (venue, guard), b in sorted(state.breakers.items()):
        if b.active:
            yield venue, guard, b
