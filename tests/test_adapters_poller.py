"""FeedPoller against a contract-shaped feed server on loopback (adapters.testing.FakeFeeds):
every adapter, shared endpoints, positions excluded, cache headers, config errors. Failures,
freezing and deadlines: tests/test_adapters_poller_failures.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters import FeedPoller, FeedSettings, PollReport
from adapters.curves import FlatCurve, LpCurve
from adapters.testing import LP_POOL, aave_reserve, llama_pool_row
from core.config import VenueConfig
from core.types import VenueKind
from protocols import aave, compound, uniswap
from tests.poller_harness import DEFAULT_VENUES, VENUES, Harness
from tests.poller_harness import h_fixture as h_fixture  # the `h` fixture


async def test_every_default_venue_gets_a_snapshot(h: Harness) -> None:
    report = await h.poller().poll({})
    assert report.rejections == ()
    assert set(report.snapshots) == {v.id for v in VENUES}
    kinds = {s.venue.kind for s in report.snapshots.values()}
    assert kinds == set(VenueKind)
    for snap in report.snapshots.values():
        assert not snap.frozen
        x = np.array([0.0, 1e3, 1e5, 1e6])
        income = snap.curve.income_usd(x)
        assert income[0] == 0.0 and np.all(np.diff(income) >= -1e-9)
    lido = report.snapshots["lido-steth"]
    assert isinstance(lido.curve, FlatCurve) and lido.real_apr == pytest.approx(0.0296)
    assert lido.venue.exit_days == pytest.approx(4.0)  # the queue's 4 days beat the configured 3
    assert report.snapshots["earn-usdt-flexible"].real_apr == pytest.approx(0.05)
    assert set(report.feed_durations_seconds) == {
        "lido",
        "aave",
        "defillama",
        "across",
        "earn",
        "compound",
        "coins",
        "binance",
        "chainlink",
        "opensea",
        "renft",
    }
    assert set(report.feed_last_success) == set(report.feed_durations_seconds)
    assert report.polled_at == h.fake.now


async def test_venues_sharing_an_endpoint_cost_one_request(h: Harness) -> None:
    h.fake.payloads["/defillama/pools"]["data"] = [
        llama_pool_row(f"pool-{i}", il_risk="no", symbol="USDC") for i in range(40)
    ]
    llama = [
        VenueConfig.model_validate(
            {
                "id": f"llama-{i}",
                "kind": "lending",
                "protocol": "x",
                "chain": "ethereum",
                "asset": "USDC",
                "feed": {"adapter": "defillama", "params": {"pool": f"pool-{i}"}},
            }
        )
        for i in range(40)
    ]
    aave_many = [
        VenueConfig.model_validate(
            {
                "id": f"aave-{i}",
                "kind": "lending",
                "protocol": "aave-v3",
                "chain": "ethereum",
                "asset": "USDC",
                "feed": {"adapter": "aave_v3", "params": {"market": "ethereum", "asset": "USDC"}},
            }
        )
        for i in range(20)
    ]
    poller = h.poller([*llama, *aave_many])
    report = await poller.poll({})
    assert report.rejections == () and len(report.snapshots) == 60
    assert h.fake.hits["/defillama/pools"] == 1
    assert h.fake.hits["/aave/v3/ethereum/reserves"] == 1
    assert h.fake.hits["/aave/v3/ethereum/incentives"] == 1
    assert report.requests == 3
    await poller.poll({})
    assert h.fake.hits["/defillama/pools"] == 2


async def test_coins_are_batched(h: Harness) -> None:
    poller = h.poller(coins_batch_size=1)
    await poller.poll({})
    batched = h.poller()
    before = sum(n for p, n in h.fake.hits.items() if p.startswith("/coins/prices"))
    await batched.poll({})
    after = sum(n for p, n in h.fake.hits.items() if p.startswith("/coins/prices"))
    assert after - before == 1  # origin, destination and COMP prices in one request


async def test_aave_curve_excludes_our_position(h: Harness) -> None:
    position = 50e6
    report = await h.poller().poll({"aave-v3-usdc-ethereum": position})
    snap = report.snapshots["aave-v3-usdc-ethereum"]
    s = aave.PRESETS["ethereum-usdc-2026-02"]
    x = np.array([1e5, 1e6, 1e7, position])
    expected = x * aave.supply_apr_after_deposit(s, 800e6, 200e6 - position, x)
    np.testing.assert_allclose(snap.curve.real_income_usd(x), expected, rtol=1e-9)
    # holding exactly our current position reproduces the pool's current rate
    assert snap.curve.real_income_usd(np.array([position]))[0] / position == pytest.approx(
        float(aave.supply_apr(s, 0.8)), rel=1e-9
    )
    assert snap.state["supply_apr_feed"] == pytest.approx(float(aave.supply_apr(s, 0.8)), rel=1e-12)
    assert snap.tvl_usd == pytest.approx(1e9 - position)
    assert snap.exit_liquidity_usd == pytest.approx(200e6)
    # emissions: 1,000 USD/day split pro rata over the supply without us
    e = 1000.0 * 365
    assert snap.emission_apr == pytest.approx(e / (1e9 - position), rel=1e-3)


async def test_lp_and_comet_curves_exclude_our_position(h: Harness) -> None:
    report = await h.poller().poll(
        {"uniswap-v2-usdc-weth-ethereum": 30e6, "compound-v3-usdc-ethereum": 100e6}
    )
    lp = report.snapshots["uniswap-v2-usdc-weth-ethereum"]
    assert isinstance(lp.curve, LpCurve)
    assert lp.curve.tvl_others_usd == pytest.approx(270e6)
    x = 1e6
    volume = 0.0438 * 300e6 / (0.003 * 365)
    expected = (
        uniswap.fee_income_after_deposit_usd(x, volume, 270e6)
        - uniswap.lvr_apr(lp.state["sigma_annual"]) * x
    )
    assert float(lp.curve.real_income_usd(np.array([x]))[0]) == pytest.approx(expected, rel=1e-9)
    assert 0.3 < lp.state["sigma_annual"] < 1.0  # realized from the hourly history (0.65 generated)

    comet = report.snapshots["compound-v3-usdc-ethereum"]
    curve = compound.CometCurve.from_per_second_factors(
        9 * 10**17,
        int(0.054e18) // 31_536_000,
        int(3.034e18) // 31_536_000,
        0,
        9 * 10**17,
        int(0.05e18) // 31_536_000,
        int(3.4e18) // 31_536_000,
        int(0.015e18) // 31_536_000,
    )
    xs = np.array([1e5, 1e7])
    np.testing.assert_allclose(
        comet.curve.real_income_usd(xs),
        xs * compound.comet_supply_apr_after_deposit(curve, 400e6, 400e6, xs),
        rtol=1e-9,
    )
    # COMP: 35/day at 45 USD split over the supply without us
    assert comet.emission_apr == pytest.approx(35 * 365 * 45 / 400e6, rel=1e-3)


async def test_emission_exclusion(h: Harness) -> None:
    report = await h.poller(emissions={"exclude_tokens": ["AAVE", "COMP"]}).poll({})
    assert report.snapshots["aave-v3-usdc-ethereum"].emission_apr == 0.0
    assert report.snapshots["compound-v3-usdc-ethereum"].emission_apr == 0.0
    assert (
        report.snapshots["aave-v3-usdc-ethereum"].curve.emission_income_usd(np.array([1e6]))[0]
        == 0.0
    )


async def test_positions_that_are_not_numbers_are_ignored(h: Harness) -> None:
    report: PollReport = await h.poller().poll(
        {"aave-v3-usdc-ethereum": math.nan, "lido-steth": -5.0}
    )
    assert report.rejections == ()
    assert report.snapshots["aave-v3-usdc-ethereum"].state["position_usd"] == 0.0


async def test_frozen_reserve_caps_at_zero_growth(h: Harness) -> None:
    h.fake.payloads["/aave/v3/ethereum/reserves"]["reservesData"] = [
        {**aave_reserve(h.fake.now), "isFrozen": True}
    ]
    venues = [v for v in VENUES if v.feed.adapter == "aave_v3"]
    snap = (await h.poller(venues).poll({})).snapshots["aave-v3-usdc-ethereum"]
    assert snap.curve.capacity_usd == 0.0


async def test_history_days_uses_the_chart(h: Harness) -> None:
    venue = DEFAULT_VENUES[2].model_copy(
        update={
            "feed": DEFAULT_VENUES[2].feed.model_copy(
                update={"params": {"pool": LP_POOL, "sigma_annual": 0.5, "history_days": 3}}
            )
        }
    )
    snap = (await h.poller([venue]).poll({})).snapshots[venue.id]
    assert snap.state["apy_base_history_mean"] == pytest.approx((4.4 + 4.5 + 4.6) / 3 / 100)
    assert snap.state["sigma_annual"] == 0.5
    assert h.fake.hits[f"/defillama/chart/{LP_POOL}"] == 1


def test_config_errors_name_the_field() -> None:
    bad = DEFAULT_VENUES[1].model_copy(
        update={
            "feed": DEFAULT_VENUES[1].feed.model_copy(update={"params": {"market": "ethereum"}})
        }
    )
    with pytest.raises(ValueError, match=r"aave-v3-usdc-ethereum: feed.params.asset"):
        FeedPoller([bad], FeedSettings(), None, root_url="http://x", clock=lambda: None)  # type: ignore[arg-type]
    unknown = DEFAULT_VENUES[0].model_copy(
        update={"feed": DEFAULT_VENUES[0].feed.model_copy(update={"adapter": "nope"})}
    )
    with pytest.raises(ValueError, match=r"feed\.adapter 'nope' unknown"):
        FeedPoller([unknown], FeedSettings(), None, root_url="http://x", clock=lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="serves kinds"):
        wrong = DEFAULT_VENUES[0].model_copy(update={"kind": VenueKind.LENDING})
        FeedPoller([wrong], FeedSettings(), None, root_url="http://x", clock=lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="extra"):
        FeedSettings.model_validate({"nope": 1})


async def test_etag_revalidation_reuses_validated_payloads(h: Harness) -> None:
    h.fake.etag = True
    poller = h.poller()
    first = await poller.poll({})
    second = await poller.poll({})
    assert second.rejections == () and poller.client.stats.not_modified == second.requests
    assert (
        second.snapshots["aave-v3-usdc-ethereum"].real_apr
        == first.snapshots["aave-v3-usdc-ethereum"].real_apr
    )
    h.fake.payloads["/earn/sapi/v1/simple-earn/flexible/list"]["rows"][0][
        "latestAnnualPercentageRate"
    ] = "0.06"
    third = await poller.poll({})
    assert third.snapshots["earn-usdt-flexible"].real_apr == pytest.approx(0.06)


async def test_max_age_skips_requests_and_keeps_last_success(h: Harness) -> None:
    h.fake.headers["/earn"] = {"Cache-Control": "max-age=3600"}
    # without the guards' coins price, whose endpoint this fake does not cache
    venues = [
        v.model_copy(update={"feed": v.feed.model_copy(update={"asset_coin": None})})
        for v in VENUES
        if v.feed.adapter == "fixed"
    ]
    poller = h.poller(venues)
    first = await poller.poll({})
    second = await poller.poll({})
    assert second.requests == 0 and second.rejections == ()
    assert second.feed_last_success["earn"] == first.feed_last_success["earn"]
    assert h.fake.hits["/earn/sapi/v1/simple-earn/flexible/list"] == 1


async def test_across_fill_time_under_either_name(h: Harness) -> None:
    venues = [v for v in VENUES if v.feed.adapter == "across"]
    fees = h.fake.payloads["/across/api/suggested-fees"]
    fees["estimatedFillTimeSec"] = fees.pop("expectedFillTimeSec")
    report = await h.poller(venues).poll({})
    assert (
        report.rejections == ()
        and report.snapshots["across-usdc-arbitrum-base"].state["expected_fill_seconds"] == 60
    )
    del fees["estimatedFillTimeSec"]
    report = await h.poller(venues).poll({})
    assert report.rejections[0].reason == "schema" and "FillTimeSec" in report.rejections[0].detail


async def test_snapshots_pickle_and_copy(h: Harness) -> None:
    """Snapshots can be recorded, sent to a worker process or deep-copied by a backtest."""
    import copy
    import pickle

    report = await h.poller().poll({"aave-v3-usdc-ethereum": 1e6})
    again = pickle.loads(pickle.dumps(report))
    x = np.array([0.0, 1e5, 1e7])
    for vid, snap in report.snapshots.items():
        np.testing.assert_array_equal(
            again.snapshots[vid].curve.income_usd(x), snap.curve.income_usd(x)
        )
        np.testing.assert_array_equal(
            copy.deepcopy(snap).curve.income_usd(x), snap.curve.income_usd(x)
        )
