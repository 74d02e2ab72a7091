"""``OptimizerMemory``: a value in and out of ``decide``, that survives JSON and a fresh optimizer."""

from __future__ import annotations

import base64
import json
import pickle
import sqlite3
from datetime import timedelta

import numpy as np
import pytest

from optimizer import Optimizer, OptimizerSettings
from optimizer.bench import T0, all_limits, drift
from optimizer.memory import EMPTY_MEMORY, MemoryFormatError, OptimizerMemory
from optimizer.testing import random_market
from vault.ledger import SCHEMA_VERSION, Ledger

SETTINGS = OptimizerSettings()


def run(n: int, venues: int = 40, seed: int = 3):
    market = random_market(venues, seed, invested_share=0.5)
    rng = np.random.default_rng(seed)
    cycles = [drift(market.snapshots, rng, T0 + timedelta(hours=i)) for i in range(n)]
    return market, all_limits(market), cycles


def test_memory_is_threaded_and_the_input_is_never_mutated():
    market, limits, cycles = run(3)
    opt = Optimizer(limits, SETTINGS, "ethereum")
    d1 = opt.decide(cycles[0], market.portfolio, T0, memory=EMPTY_MEMORY)
    frozen_copy = json.dumps(d1.memory.to_json(), sort_keys=True)
    d2 = opt.decide(cycles[1], market.portfolio, T0 + timedelta(hours=1), memory=d1.memory)
    assert d1.memory.cycle == 1 and d2.memory.cycle == 2
    assert json.dumps(d1.memory.to_json(), sort_keys=True) == frozen_copy
    assert d1.memory.warm and EMPTY_MEMORY.cycle == 0 and not EMPTY_MEMORY.warm
    assert opt.last_memory is d2.memory  # what decide(...) without memory= continues from


def test_a_fresh_optimizer_given_the_memory_decides_the_same():
    market, limits, cycles = run(6)
    a = Optimizer(limits, SETTINGS, "ethereum")
    memory = EMPTY_MEMORY
    for i in range(5):
        memory = a.decide(
            cycles[i], market.portfolio, T0 + timedelta(hours=i), memory=memory
        ).memory
    at = T0 + timedelta(hours=5)
    warm = a.decide(cycles[5], market.portfolio, at, memory=memory)
    round_tripped = OptimizerMemory.from_json(json.loads(json.dumps(memory.to_json())))
    fresh = Optimizer(limits, SETTINGS, "ethereum").decide(
        cycles[5], market.portfolio, at, memory=round_tripped
    )
    assert warm.status == fresh.status == "optimal"
    assert warm.allocation is not None and fresh.allocation is not None
    for vid, usd in warm.allocation.target_usd.items():
        assert fresh.allocation.target_usd[vid] == pytest.approx(
            usd, abs=1e-6 * market.portfolio.nav_usd
        )
    assert [m.venue_id for m in warm.plan.moves] == [m.venue_id for m in fresh.plan.moves]
    assert fresh.memory.cycle == warm.memory.cycle == 6


def test_the_json_round_trip_is_exact():
    market, limits, cycles = run(2)
    d = Optimizer(limits, SETTINGS, "ethereum").decide(cycles[0], market.portfolio, T0)
    back = OptimizerMemory.from_json(json.loads(json.dumps(d.memory.to_json())))
    assert back.cycle == d.memory.cycle and back.warm == d.memory.warm
    assert back.last_seen == d.memory.last_seen and back.flights == d.memory.flights
    assert set(back.last_snapshot) == set(d.memory.last_snapshot)


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_damaged_or_foreign_memory_is_refused_with_the_field_named():
    good = EMPTY_MEMORY.to_json()
    with pytest.raises(MemoryFormatError, match=r"memory\.format"):
        OptimizerMemory.from_json({**good, "format": 99})
    evil = base64.b64encode(pickle.dumps({"x": Boom()})).decode()
    with pytest.raises(MemoryFormatError, match=r"builtins\.print is not allowed"):
        OptimizerMemory.from_json({**good, "last_snapshot_pickle": evil})
    with pytest.raises(MemoryFormatError, match="memory:"):
        OptimizerMemory.from_json({**good, "warm": {"v": [1.0]}})


def test_a_version_1_ledger_gains_the_memory_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    Ledger(path).close()
    db = sqlite3.connect(path)  # make it look like a ledger written before memory_json existed
    db.executescript(
        "ALTER TABLE rebalances DROP COLUMN memory_json;"
        "UPDATE meta SET value = '1' WHERE key = 'schema_version';"
        "INSERT INTO rebalances(started_at, finished_at, outcome, solver_status, reason, nav_units,"
        " inputs_json, solution_json, moves_json, results_json)"
        " VALUES ('t', 't', 'held', 'optimal', 'r', 1, '{}', '{}', '[]', '[]');"
    )
    db.close()
    ledger = Ledger(path)
    assert ledger.schema_version() == SCHEMA_VERSION
    assert ledger.last_memory() is None  # rows from before start the optimizer cold
    assert ledger.rebalance_count() == 1
    ledger.close()
