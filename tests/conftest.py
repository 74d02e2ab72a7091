"""Fixtures shared by several test modules."""

from __future__ import annotations

from typing import Any

import pytest

from mockfeeds.app import create_app
from mockfeeds.market import Market
from tests.mockfeeds_world import cfg


@pytest.fixture
async def mk(aiohttp_client: Any) -> tuple[Market, Any]:
    """(market, test client) for the default simulated market on a stopped clock."""
    m = Market.from_config(cfg())
    return m, await aiohttp_client(create_app(m))
