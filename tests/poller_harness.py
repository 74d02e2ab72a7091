"""The feed poller's test harness: a contract-shaped feed server on loopback
(adapters.testing.FakeFeeds) and the venues of the default config plus a Compound market."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from adapters import FeedPoller, FeedSettings
from adapters.testing import COMET, FakeFeeds
from core.config import VenueConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENUES = [
    VenueConfig.model_validate(v)
    for v in yaml.safe_load((ROOT / "config/default.yaml").read_text())["venues"]
]
COMPOUND_VENUE = VenueConfig.model_validate(
    {
        "id": "compound-v3-usdc-ethereum",
        "kind": "lending",
        "protocol": "compound-v3",
        "chain": "ethereum",
        "asset": "USDC",
        "feed": {"adapter": "compound_v3", "params": {"chain": "ethereum", "comet": COMET}},
    }
)
VENUES = [*DEFAULT_VENUES, COMPOUND_VENUE]
# Generous: a loopback answer on a loaded 2-core box can take most of a second. A test that wants a
# timeout sets a short one on the feed it delays only (``feed_timeout_seconds``), so no other feed
# can time out by accident.
FAST = {
    "timeout_seconds": 5.0,
    "retry": {"attempts": 1, "backoff_base_seconds": 0.0, "backoff_max_seconds": 0.0},
}


class Harness:
    def __init__(self, fake: FakeFeeds, root: str, session: aiohttp.ClientSession) -> None:
        self.fake, self.root, self.session = fake, root, session

    def poller(self, venues: list[VenueConfig] = VENUES, **settings: Any) -> FeedPoller:
        s = FeedSettings.model_validate({**FAST, **settings})
        return FeedPoller(venues, s, self.session, root_url=self.root, clock=lambda: self.fake.now)


@pytest.fixture(name="h")
async def h_fixture(aiohttp_server) -> Any:  # type: ignore[no-untyped-def]
    fake = FakeFeeds()
    server = await aiohttp_server(fake.app())
    async with aiohttp.ClientSession() as session:
        yield Harness(fake, str(server.make_url("")).rstrip("/"), session)
