"""Fuzz (hypothesis): whatever a feed sends, an adapter returns a snapshot or refuses with a
reason from the closed set; it never raises anything else, never returns a broken curve."""

from __future__ import annotations

import copy
import math
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import REASONS, FeedError, FeedSettings
from adapters.base import BuildContext
from adapters.coins import chart_endpoints, price_endpoints
from adapters.http import Fetched
from adapters.poller import ADAPTERS
from adapters.testing import COMET, FakeFeeds
from core.config import VenueConfig
from tests.test_adapters_poller import VENUES

FUZZ = settings(
    deadline=None, max_examples=60, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["NaN", "-1", "1e400", "0x", "", "Infinity", "12.5", "-0"]),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(payload: Any, path: tuple[Any, ...], action: str, value: Any, number: float) -> Any:
    if not path:
        return value
    root = copy.deepcopy(payload)
    obj = root
    for key in path[:-1]:
        obj = obj[key]
    old = obj[path[-1]]
    if action == "delete" and isinstance(obj, dict):
        del obj[path[-1]]
    elif action == "renumber" and isinstance(old, (int, float)) and not isinstance(old, bool):
        obj[path[-1]] = number  # same kind of field, a hostile number (NaN, inf, negative, huge)
    elif (
        action == "renumber"
        and isinstance(old, str)
        and old.lstrip("-").replace(".", "", 1).isdigit()
    ):
        obj[path[-1]] = repr(number) if not number.is_integer() else str(int(number))
    else:
        obj[path[-1]] = value
    return root


def _build(venue: VenueConfig, fake: FakeFeeds, mutated: dict[str, Any]) -> Any:
    adapter = ADAPTERS[venue.feed.adapter]
    fs = FeedSettings(root_url="http://feeds")
    plan = adapter.plan(venue, adapter.parse_params(venue), f"http://feeds/{adapter.prefix}", fs)
    coin_eps = price_endpoints("http://feeds/coins", [*plan.coins, *plan.optional_coins], 100)
    chart_eps = chart_endpoints("http://feeds/coins", plan.chart_coins, 168)
    results: dict[Any, Any] = {}
    for i, ep in enumerate((*plan.endpoints, *set(coin_eps.values()), *set(chart_eps.values()))):
        path = urlsplit(ep.url).path.replace("http://feeds", "")
        key = path if not path.startswith("/coins/") else path.split("/")[2]
        payload = mutated.get(key, fake.payload_for(path, dict(ep.params)))
        results[ep] = Fetched(ep.url, payload, fake.now, version=i + 1, received_at=fake.now)
    ctx = BuildContext(fs, fake.now, results, coin_eps, chart_eps, {})
    return adapter.build(plan, ctx, 1_000.0)


def _endpoint_keys(venue: VenueConfig) -> list[str]:
    adapter = ADAPTERS[venue.feed.adapter]
    fs = FeedSettings(root_url="http://feeds")
    plan = adapter.plan(venue, adapter.parse_params(venue), f"http://feeds/{adapter.prefix}", fs)
    keys = [urlsplit(ep.url).path for ep in plan.endpoints]
    if plan.coins or plan.optional_coins:
        keys.append("prices")
    if plan.chart_coins:
        keys.append("chart")
    return keys


def _check(venue: VenueConfig, fake: FakeFeeds, mutated: dict[str, Any]) -> None:
    try:
        snap = _build(venue, fake, mutated)
    except FeedError as exc:
        assert exc.reason in REASONS and exc.detail
        return
    x = np.array([0.0, 1e3, 1e6, 1e9])
    income = snap.curve.income_usd(x)
    assert (
        np.all(np.isfinite(income))
        and income[0] == 0.0
        and np.all(np.diff(income) >= -1e-6 * max(1.0, abs(income).max()))
    )
    assert math.isfinite(snap.real_apr) and math.isfinite(snap.emission_apr)
    assert snap.tvl_usd >= 0 and snap.exit_liquidity_usd >= 0


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.id)
@FUZZ
@given(data=st.data())
def test_mutated_payloads_never_crash_an_adapter(venue: VenueConfig, data: st.DataObject) -> None:
    fake = FakeFeeds()
    key = data.draw(st.sampled_from(_endpoint_keys(venue)))
    path_key = key
    if key == "prices":
        base = fake.coins_current(",".join(fake.coin_prices))
    elif key == "chart":
        base = fake.coins_chart(",".join(fake.coin_prices), 24)
    else:
        base = fake.payload_for(key, {"amount": "100"})
    path = data.draw(st.sampled_from(_paths(base)))
    action = data.draw(st.sampled_from(["replace", "delete", "renumber", "renumber"]))
    value = data.draw(json_value)
    number = data.draw(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([-1.0, 0.0, 1e40, 1e-40, 2.0**70]),
        )
    )
    _check(venue, fake, {path_key: _mutate(base, path, action, value, number)})


def test_compound_venue_is_fuzzed_too() -> None:
    assert any(v.feed.adapter == "compound_v3" and v.feed.params["comet"] == COMET for v in VENUES)
