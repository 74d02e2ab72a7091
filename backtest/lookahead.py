"""The look-ahead check (Freqtrade's ``lookahead_analysis`` for a vault): decisions must not change
when the future is removed.

Replay ``ours`` on the whole history, then again on the history cut at ``cuts`` random cycle times
(seeded), everything re-derived from the cut data alone (the rate-curve fits included). Every
decision up to a cut (its status, plan, moves and target: ``CycleRecord.digest``) and every NAV must
be identical to the full run's. A difference names the first cycle where the cut run decided
otherwise: something read data after ``t``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backtest.engine import RunConfig, run_strategies
from backtest.history import iso
from backtest.market import history_venues
from backtest.rates import fit_rate_models
from backtest.strategies import make_strategy


def check_lookahead(
    p: Any, out_dir: Path, *, cuts: int = 3, seed: int = 0, strategy: str = "ours"
) -> dict[str, Any]:
    """``strategy``: which one to check (``hindsight`` must fail it: the test's negative control)."""
    cfg = RunConfig(
        p.config.limits,
        p.config.settings,
        p.config.home_chain,
        p.config.capital_usd,
        p.period_seconds,
    )

    def replay(history: Any, tag: str) -> Any:
        venues = history_venues(history)
        s = make_strategy(strategy, cfg.limits, cfg.settings, cfg.home_chain)
        return run_strategies(
            [s],
            history,
            fit_rate_models(history),
            venues,
            cfg,
            out_dir / tag,
            prices=p.prices,
        )[0]

    full = replay(p.history, "full")
    n = len(full.records)
    rng = np.random.default_rng(seed)
    picks = sorted({int(k) for k in rng.integers(1, max(n - 1, 2), size=cuts)})
    results = []
    identical = True
    for k in picks:
        cut_ts = full.records[k].ts
        part = replay(p.history.cut(cut_ts), f"cut-{k}")
        first_diff = next(
            (
                i
                for i, (a, b) in enumerate(zip(full.records, part.records, strict=False))
                if a.digest != b.digest or a.nav_units != b.nav_units
            ),
            None,
        )
        same = first_diff is None and len(part.records) == k + 1
        identical &= same
        results.append(
            {
                "cut_at": iso(cut_ts),
                "cycles_compared": len(part.records),
                "identical": same,
                "first_difference_at": None
                if first_diff is None
                else iso(full.records[first_diff].ts),
            }
        )
    return {"identical": identical, "cuts": results, "seed": seed, "strategy": strategy}
