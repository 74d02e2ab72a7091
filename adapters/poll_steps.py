"""The poll's steps that hold no poller state: build venue snapshots from fetched payloads
(:func:`build_plans`, CPU only: the poller runs it in a worker thread) and fetch a paged
endpoint (:func:`get_paged`). Used by :class:`adapters.poller.FeedPoller`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from adapters.base import BuildContext, Endpoint, VenuePlan
from adapters.errors import FeedError
from adapters.http import FeedClient, Fetched
from core.types import VenueSnapshot


def _log() -> structlog.typing.FilteringBoundLogger:
    # a fresh proxy per use, so logging reconfigured after import (the daemon, tests) applies
    return structlog.get_logger("adapters")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a venue got no fresh snapshot this cycle. ``reason`` is from :data:`adapters.errors.REASONS`."""

    venue_id: str
    feed: str
    reason: str
    detail: str


def build_plans(
    plans: Sequence[VenuePlan],
    ctx: BuildContext,
    positions_usd: Mapping[str, float],
    last_good: dict[str, VenueSnapshot],
    last_reason: dict[str, str],
) -> tuple[dict[str, VenueSnapshot], list[Rejection]]:
    """Each plan's snapshot from the fetched payloads (parsing, validation, curve fitting:
    CPU only, no I/O), or the reason it was refused. A good snapshot is also kept in
    ``last_good``, and a venue that recovers leaves ``last_reason`` (logged)."""
    snapshots: dict[str, VenueSnapshot] = {}
    rejections: list[Rejection] = []
    for plan in plans:
        vid = plan.config.id
        position = _position(positions_usd, vid)
        try:
            snapshot = plan.adapter.build(plan, ctx, position)
        except FeedError as exc:
            rejections.append(Rejection(vid, _feed_of(exc, plan), exc.reason, exc.detail))
        except KeyError as exc:  # an endpoint or coin the plan did not register: a bug
            rejections.append(Rejection(vid, plan.adapter.feed, "schema", f"missing input {exc}"))
            _log().exception("adapter_bug", venue=vid)
        except Exception as exc:
            rejections.append(
                Rejection(vid, plan.adapter.feed, "schema", f"{type(exc).__name__}: {exc}")
            )
            _log().exception("adapter_build_failed", venue=vid, feed=plan.adapter.feed)
        else:
            snapshot = _with_peg_prices(ctx, plan, snapshot)
            last_good[vid] = snapshot
            snapshots[vid] = snapshot
            if vid in last_reason:
                _log().info(
                    "feed_recovered",
                    venue=vid,
                    feed=plan.adapter.feed,
                    was=last_reason.pop(vid),
                )
    return snapshots, rejections


PAGE_SIZE = 100
MAX_PAGES = 50


async def get_paged(client: FeedClient, ep: Endpoint) -> Fetched:
    """Page 1, then the pages its ``total`` calls for, merged as one ``{"rows", "total"}``."""
    query = dict(ep.query or {})
    first = await client.get_json(
        ep.feed, ep.url, {**query, "current": "1", "size": str(PAGE_SIZE)}
    )
    payload = first.payload
    total = payload.get("total") if isinstance(payload, dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or total <= PAGE_SIZE:
        return first
    pages = min(math.ceil(total / PAGE_SIZE), MAX_PAGES)
    rest = await asyncio.gather(
        *(
            client.get_json(ep.feed, ep.url, {**query, "current": str(n), "size": str(PAGE_SIZE)})
            for n in range(2, pages + 1)
        )
    )
    rows: list[object] = []
    for page in (first, *rest):
        page_rows = page.payload.get("rows") if isinstance(page.payload, dict) else None
        if not isinstance(page_rows, list):
            raise FeedError("schema", f"{page.url}: field rows: expected a list", feed=ep.feed)
        rows.extend(page_rows)
    return Fetched(
        url=ep.url,
        payload={"rows": rows, "total": total},
        fetched_at=min(p.fetched_at for p in (first, *rest)),
        from_cache=all(p.from_cache for p in (first, *rest)),
        version=hash(tuple(p.version for p in (first, *rest))),
        requests=sum(p.requests for p in (first, *rest)),
        received_at=max(
            (p.received_at for p in (first, *rest) if p.received_at is not None), default=None
        ),
    )


def _peg_coins(plan: VenuePlan) -> tuple[str, ...]:
    feed = plan.config.feed
    return tuple(c for c in (feed.asset_coin, feed.peg_coin) if c)


def _with_peg_prices(ctx: BuildContext, plan: VenuePlan, snapshot: VenueSnapshot) -> VenueSnapshot:
    """``asset_price_usd`` and ``peg_price_usd`` from the coins feed for the guards, where the
    venue names its ``feed.asset_coin`` / ``feed.peg_coin``; an unpriced coin is left out (the
    depeg guard then has nothing to judge), never a rejection of the venue."""
    feed = plan.config.feed
    extra: dict[str, float] = {}
    for key, coin in (("asset_price_usd", feed.asset_coin), ("peg_price_usd", feed.peg_coin)):
        if not coin:
            continue
        try:
            extra[key] = ctx.price(coin).price
        except (FeedError, KeyError):
            continue
    if not extra:
        return snapshot
    return dataclasses.replace(snapshot, state={**snapshot.state, **extra})


def _position(positions_usd: Mapping[str, float], venue_id: str) -> float:
    try:
        value = float(positions_usd.get(venue_id, 0.0))
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def _feed_of(exc: FeedError, plan: VenuePlan) -> str:
    """The feed a failure belongs to: a coins failure is the coins feed's, not the venue's."""
    return exc.feed or plan.adapter.feed
