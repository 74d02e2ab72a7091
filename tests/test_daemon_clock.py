"""Following a separately running simulated market's clock (vault.clock: auto)."""

from datetime import datetime

from mockfeeds.market import Market
from tests.mockfeeds_world import DEFAULT
from vault.daemon import FollowedClock


def test_the_market_reports_its_clock_as_well_as_its_last_tick():
    wall = [0.0]
    market = Market.from_config(DEFAULT, wall_clock=lambda: wall[0])  # 3600 simulated s per wall s
    wall[0] = 0.2  # 720 simulated seconds: inside the first 900 s tick
    state = market.summary()
    tick, clock = (
        datetime.fromisoformat(state[k].replace("Z", "+00:00")) for k in ("sim_time", "clock_time")
    )
    assert (
        clock - tick
    ).total_seconds() > 600  # data may be stamped up to the clock, past the tick
    assert clock.timestamp() == market.clock.now()


def test_the_followed_clock_anchors_on_the_market_clock_not_its_last_tick():
    state = {
        "sim_time": "2026-02-01T01:30:00.000Z",
        "clock_time": "2026-02-01T01:44:30.000Z",
        "time_scale": 0.0,
    }
    followed = FollowedClock(state)
    assert followed().isoformat() == "2026-02-01T01:44:30+00:00"
    # an older market that reports only its tick is still followed
    assert FollowedClock({"sim_time": "2026-02-01T01:30:00.000Z", "time_scale": 0.0})().minute == 30


def test_the_followed_clock_is_never_behind_the_market_and_never_goes_back():
    """Anchored where the request was sent, a slow round trip puts the followed clock ahead of the
    market's (data looks older), never behind it (fresh data judged "future": 47 s at 3600x with
    an 80 ms round trip on a loaded box). A resync from a slower reading does not move it back."""
    import time

    market = Market.from_config(DEFAULT, wall_clock=time.monotonic)  # 3600 simulated s / wall s
    sent_at = time.monotonic()
    time.sleep(0.05)  # the request on its way
    state = market.summary()  # the market reads its clock here
    time.sleep(0.05)  # the answer on its way back
    followed = FollowedClock(state, sent_at)
    assert followed().timestamp() >= market.clock.now()
    # and anchored at arrival (the old way) it lagged the market by the way back x 3600
    assert FollowedClock(state)().timestamp() < market.clock.now() - 100
    ahead = followed()
    stale = {**state, "time_scale": market.clock.time_scale}
    followed.resync(stale, time.monotonic())  # an older reading of the market's clock
    assert followed() >= ahead
