"""The independent checker's per-venue facts that depend only on the venue set and the config (ids,
exit times, risk scores, chains, the 0/1 group membership matrix, the liquidity floors' masks),
built from the raw :class:`core.types.Venue` records and kept while the venue set stays the same.
Part of the independent checker (:mod:`optimizer.checker`): shares no code with the model.

Why a cache: these facts take a pass over every venue in Python (at 10,000 venues, tens of ms),
and a daemon's venue set changes rarely, while the snapshots (rates, TVL, liquidity) change every
cycle. The key is the tuple of venues itself (frozen dataclasses: equal venues are equal facts)
plus the limits, settings and home chain, compared by identity (frozen pydantic models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.types import Venue, VenueSnapshot
from optimizer.config import OptimizerSettings, RiskLimits

__all__ = ["VenueFacts"]


@dataclass(frozen=True, slots=True, eq=False)
class VenueFacts:
    """What the rules read of each venue, and of the group caps, in arrays (snapshot order)."""

    venues: tuple[Venue, ...]
    limits: RiskLimits
    settings: OptimizerSettings
    home_chain: str
    ids: list[str]
    index: dict[str, int]
    own_exit: np.ndarray  # the venue's own exit time, days
    queued: np.ndarray  # own exit beyond instant_exit_days: a withdrawal is in flight (README §4a)
    scores: np.ndarray
    exit_days: np.ndarray  # own exit plus the bridge home off the home chain
    chain_names: np.ndarray
    chain_of: np.ndarray
    G: np.ndarray  # (groups, venues) 0/1 membership
    groups: list[tuple[str, str, float, np.ndarray]]  # (family, key, ratio, member mask)
    floor_masks: list[np.ndarray]  # per liquidity floor: venues with exit_days <= D
    gas_in: np.ndarray  # deposit gas, USD
    gas_out: np.ndarray  # withdrawal gas, USD
    fee: np.ndarray  # fee_bps / 1e4
    across: list[int]  # the Across routes (bridge fee quotes)
    any_queued: bool  # some venue's withdrawals go in flight
    longest_exit: float  # the longest exit_days of any venue (0 with none)
    chain_strs: list[str]  # chain_names as str

    @classmethod
    def of(
        cls,
        snaps: Sequence[VenueSnapshot],
        limits: RiskLimits,
        settings: OptimizerSettings,
        home_chain: str,
    ) -> VenueFacts:
        venues = tuple(s.venue for s in snaps)
        last = _LAST.facts
        if (
            last is not None
            and last.limits is limits
            and last.settings is settings
            and last.home_chain == home_chain
            and last.venues == venues
        ):
            return last
        facts = cls.build(venues, limits, settings, home_chain)
        _LAST.facts = facts
        return facts

    @classmethod
    def build(
        cls,
        venues: tuple[Venue, ...],
        limits: RiskLimits,
        settings: OptimizerSettings,
        home_chain: str,
    ) -> VenueFacts:
        ids = [v.id for v in venues]
        cols = np.array(
            [
                (
                    v.exit_days,
                    v.risk_score,
                    v.chain != home_chain,
                    v.costs.deposit_usd,
                    v.costs.withdraw_usd,
                    v.costs.fee_bps / 1e4,
                )
                for v in venues
            ],
            dtype=float,
        ).reshape(len(venues), 6)
        own_exit = cols[:, 0]
        exit_days = own_exit + np.where(cols[:, 2] > 0, settings.bridge_days, 0.0)
        chain_names, chain_of = np.unique(
            np.array([v.chain for v in venues] + [home_chain], dtype=object), return_inverse=True
        )
        # group caps: (family, key, ratio, member mask); one pass over the venues for all of them
        families = (
            ("kind", {str(k): v for k, v in limits.max_kind_ratio.items()}),
            ("chain", dict(limits.max_chain_ratio)),
            ("protocol", dict(limits.max_protocol_ratio)),
            ("dependency", dict(limits.max_dependency_ratio)),
            (
                "illiquid",
                {"illiquid": limits.max_illiquid_ratio}
                if limits.max_illiquid_ratio is not None
                else {},
            ),
        )
        rows: dict[tuple[str, str], int] = {}
        caps: list[tuple[str, str, float]] = []
        for family, caps_cfg in families:
            for key, ratio in caps_cfg.items():
                rows[(family, key)] = len(caps)
                caps.append((family, key, float(ratio)))
        G = np.zeros((len(caps), len(venues)))
        if caps:
            kinds = np.array([str(v.kind) for v in venues], dtype=object)
            chains = np.array([v.chain for v in venues], dtype=object)
            protocols = np.array([v.protocol for v in venues], dtype=object)
            by_family = {"kind": kinds, "chain": chains, "protocol": protocols}
            illiquid_kinds = {str(k) for k in limits.illiquid_kinds}
            for (family, key), r in rows.items():
                if family in by_family:
                    G[r] = by_family[family] == key
                elif family == "illiquid":  # every venue of an illiquid kind (NFT rentals, loops)
                    G[r] = np.array([k in illiquid_kinds for k in kinds], dtype=bool)
                else:  # a dependency: the venue's protocol or one of its dependencies
                    G[r] = protocols == key
            for i, v in enumerate(venues):
                for d in v.dependencies:
                    dep_row = rows.get(("dependency", d))
                    if dep_row is not None:
                        G[dep_row, i] = 1.0
        return cls(
            venues=venues,
            limits=limits,
            settings=settings,
            home_chain=home_chain,
            ids=ids,
            index={vid: i for i, vid in enumerate(ids)},
            own_exit=own_exit,
            queued=own_exit > settings.instant_exit_days,
            scores=cols[:, 1],
            exit_days=exit_days,
            chain_names=chain_names,
            chain_of=chain_of[:-1],
            G=G,
            groups=[(family, key, ratio, G[k] > 0) for k, (family, key, ratio) in enumerate(caps)],
            floor_masks=[exit_days <= f.days for f in limits.liquidity_floors],
            gas_in=cols[:, 3].copy(),
            gas_out=cols[:, 4].copy(),
            fee=cols[:, 5].copy(),
            across=[i for i, v in enumerate(venues) if v.protocol == "across"],
            any_queued=bool((own_exit > settings.instant_exit_days).any()),
            longest_exit=float(exit_days.max()) if len(exit_days) else 0.0,
            chain_strs=[str(c) for c in chain_names],
        )


class _Last:
    """The facts of the last venue set (one reference, read and replaced whole: safe across the
    worker threads decides run in; two optimizers with different venue sets just rebuild)."""

    facts: VenueFacts | None = None


_LAST = _Last()
