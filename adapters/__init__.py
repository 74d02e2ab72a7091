"""Adapters: resilient polling of every feed into venue snapshots and yield curves.

The daemon's interface::

    from adapters import FeedSettings, FeedPoller, PollReport
    poller = FeedPoller(venues, settings, session, root_url=..., clock=...)
    report = await poller.poll(positions_usd)

See ``adapters/README.md`` for the feeds, their live hosts and the curve math.
"""

from adapters.config import FeedSettings
from adapters.errors import REASONS, FeedError
from adapters.poller import ADAPTERS, FeedPoller, PollReport, Rejection

__all__ = [
    "ADAPTERS",
    "REASONS",
    "FeedError",
    "FeedPoller",
    "FeedSettings",
    "PollReport",
    "Rejection",
]
