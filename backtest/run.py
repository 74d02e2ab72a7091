"""One backtest run: load and gate the inputs, replay every strategy, write summary.json and report.html.

``summary.json`` is deterministic: the same inputs (history bytes, config, window, period,
strategies) give the same bytes (no wall times, sorted keys, rounded floats); the input file's
SHA-256 is in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backtest.engine import RunConfig, StrategyRun, run_strategies
from backtest.history import HistoryError, LendingHistory, iso, parse_utc
from backtest.market import history_venues
from backtest.metrics import summarize
from backtest.rates import RateModels, fit_rate_models
from backtest.sources import PriceTable, load_history, load_stablecoin_prices
from backtest.strategies import STRATEGIES, make_strategy
from optimizer import OptimizerSettings, RiskLimits
from vault.settings import REPO_ROOT, ConfigError, read_yaml

DEFAULT_BACKTEST_CONFIG = REPO_ROOT / "config" / "backtest.yaml"


def shared_data(name: str) -> Path | None:
    """``shared/data/<name>`` next to the repository or above it (``$YIELDVAULT_SHARED_DIR`` first)."""
    env = os.environ.get("YIELDVAULT_SHARED_DIR")
    roots = ([Path(env)] if env else []) + [p / "shared" for p in REPO_ROOT.parents]
    for root in roots:
        if (root / "data" / name).is_file():
            return root / "data" / name
    return None


DEFAULT_PRICES = shared_data("stablecoin_prices_daily.csv")
# a USD vault: WETH's price path is not in the files. Each symbol takes its variants too
# (``history.base_symbol``: USDC.e, USDbC, USDT0, USDC-0xaf88), so on the daily 13-chain file the
# default is every chain's USDC, USDT, DAI and USDe reserve (33), no ETH, BTC, LST or EURC
DEFAULT_ASSETS = (
    "DAI",
    "USDC",
    "USDT",
    "USDE",
)


class BadInput(ValueError):
    """Input the CLI refuses with exit code 2: names the field and the reason."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def parse_period(text: str, field: str = "--rebalance-every") -> int:
    """``6h``, ``1h``, ``30m``, ``1d`` or plain seconds -> seconds (> 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise BadInput(field, f"expected a duration like 6h, 30m, 1d or seconds, got {text!r}")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[m.group(2)]
    if seconds <= 0:
        raise BadInput(field, "must be > 0")
    return int(seconds)


@dataclass(frozen=True)
class BacktestConfig:
    limits: RiskLimits
    settings: OptimizerSettings
    home_chain: str
    capital_usd: float
    source: str
    guards: Any = None  # guard.GuardSettings (the ``guards:`` section) for ``ours_guarded``


def load_config(path: Path | None) -> BacktestConfig:
    """The vault, limits and optimizer sections of a YAML config (daemon or backtest); other keys
    are ignored (venues come from the history). ConfigError names the key."""
    path = path or DEFAULT_BACKTEST_CONFIG
    raw = read_yaml(path)
    problems: list[str] = []
    vault = raw.get("vault") or {}
    if not isinstance(vault, dict):
        raise ConfigError(str(path), ["vault: must be a mapping"])
    try:
        limits = RiskLimits(**(raw.get("limits") or {}))
    except (ValidationError, TypeError) as exc:
        problems += [f"limits.{e}" for e in _errors(exc)]
    try:
        settings = OptimizerSettings(**(raw.get("optimizer") or {}))
    except (ValidationError, TypeError) as exc:
        problems += [f"optimizer.{e}" for e in _errors(exc)]
    try:
        capital = float(vault.get("initial_capital_usd", 1_000_000))
        if not capital > 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(
            f"vault.initial_capital_usd: must be a number > 0 (got {vault.get('initial_capital_usd')!r})"
        )
    guards = None
    try:
        from guard import GuardSettings

        guards = GuardSettings(**(raw.get("guards") or {}))
    except (ValidationError, TypeError) as exc:
        problems += [f"guards.{e}" for e in _errors(exc)]
    home = vault.get("home_chain", "ethereum")
    if not isinstance(home, str) or not home:
        problems.append(f"vault.home_chain: must be a chain name (got {home!r})")
    if problems:
        raise ConfigError(str(path), problems)
    return BacktestConfig(limits, settings, home, capital, str(path), guards)


def _errors(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
    return [str(exc)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Prepared:
    history: LendingHistory
    rates: RateModels
    prices: PriceTable | None
    config: BacktestConfig
    period_seconds: int
    inputs: dict[str, Any] = field(default_factory=dict)


def prepare(
    history_path: Path,
    config_path: Path | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    period: str = "6h",
    assets: Sequence[str] | None = DEFAULT_ASSETS,
    prices_path: Path | None = DEFAULT_PRICES,
    history: LendingHistory | None = None,
    fill_gaps: int = 0,
) -> Prepared:
    """Load, gate and window the inputs (``history`` given: skip reading ``history_path``).

    The history is the lending contract or the daily 13-chain file (``sources.load_history``,
    by its header); ``fill_gaps``: the gap rule's limit (``history`` module docstring).
    ``summary.inputs`` says what was converted (``converted``), which rows were carried over gaps
    (``fill_gaps``) and which reserves end early (``ended_reserves``), each only when it applies."""
    cfg = load_config(config_path)
    period_seconds = parse_period(period)
    if isinstance(fill_gaps, bool) or not isinstance(fill_gaps, int) or fill_gaps < 0:
        raise BadInput("--fill-gaps", f"must be a whole number of periods >= 0, got {fill_gaps!r}")
    converted = None
    if history is not None:
        h = history
    else:
        h, converted = load_history(history_path)
    h = h.select(list(assets) if assets else None)
    a = parse_utc(start, "--from", "--from") if start else None
    b = parse_utc(end, "--to", "--to") if end else None
    if a is not None and b is not None and b <= a:
        raise BadInput("--to", f"{end} is not after --from {start}")
    h = h.window(a, b).gated(fill_gaps)
    prices = load_stablecoin_prices(prices_path) if prices_path and prices_path.is_file() else None
    inputs: dict[str, Any] = {
        "history": Path(history_path).name,
        "history_sha256": _sha256(Path(history_path)) if Path(history_path).is_file() else None,
        "config": Path(cfg.source).name,
        "from": iso(h.times[0]),
        "to": iso(h.times[-1]),
        "rebalance_every_seconds": period_seconds,
        "step_seconds": h.step_seconds,
        "reserves": [r.key for r in h.reserves],
        "capital_usd": cfg.capital_usd,
        "home_chain": cfg.home_chain,
        "prices": Path(prices.source).name if prices else None,
        "marks_until": iso(int(prices.days[-1]) + 86_399) if prices else None,
    }
    keys = {r.key for r in h.reserves}
    if converted is not None:
        relabelled = {k: v for k, v in converted["relabelled"].items() if k in keys}
        inputs["converted"] = {**converted, "relabelled": relabelled}
    if fill_gaps:
        inputs["fill_gaps"] = {"max_periods": fill_gaps, "reserves": h.gaps_filled()}
    frozen = h.frozen_rows()
    if frozen:
        inputs["frozen_reserves"] = frozen
    ended = h.ended()
    if ended:
        inputs["ended_reserves"] = {
            k: {"last_row": t, "rule": "no snapshot or deposit after it, no accrual, withdrawable"}
            for k, t in ended.items()
        }
    return Prepared(h, fit_rate_models(h), prices, cfg, period_seconds, inputs)


def run_prepared(
    p: Prepared,
    out_dir: Path,
    strategies: Sequence[str] = STRATEGIES,
    *,
    progress: Callable[[int], None] | None = None,
    audit_every_cycle: bool = False,
    jobs: int = 1,
) -> tuple[dict[str, Any], list[StrategyRun]]:
    """``jobs`` > 1: strategies replay in that many worker processes (each its own world and
    books, as in one process; the summary is the same bytes)."""
    venues = history_venues(p.history)
    if jobs > 1 and len(strategies) > 1:
        runs = _parallel(p, out_dir, list(strategies), jobs, progress, audit_every_cycle)
    else:
        runs = _serial(p, out_dir, list(strategies), progress, audit_every_cycle)
    table = summarize(runs, {v.id: v.asset.upper() for v in venues})
    ours = table.get("ours", {}).get("net_apy")
    beaten_by = sorted(
        n
        for n, m in table.items()
        if n not in ("ours", "hindsight")
        and isinstance(ours, float)
        and isinstance(m["net_apy"], float)
        and m["net_apy"] > ours
    )
    summary = {
        "inputs": {**p.inputs, "strategies": list(strategies)},
        "rate_fit": {"refits": p.rates.refits},
        "strategies": table,
        "baselines_above_ours": beaten_by,
        "ours_limit_breach_cycles": table.get("ours", {}).get("limit_breach_cycles"),
    }
    return summary, runs


def _serial(
    p: Prepared,
    out_dir: Path,
    names: list[str],
    progress: Callable[[int], None] | None,
    audit_every_cycle: bool,
) -> list[StrategyRun]:
    cfg = RunConfig(
        p.config.limits,
        p.config.settings,
        p.config.home_chain,
        p.config.capital_usd,
        p.period_seconds,
    )
    return run_strategies(
        [
            make_strategy(n, cfg.limits, cfg.settings, cfg.home_chain, p.config.guards)
            for n in names
        ],
        p.history,
        p.rates,
        history_venues(p.history),
        cfg,
        out_dir,
        prices=p.prices,
        progress=progress,
        audit_every_cycle=audit_every_cycle,
    )


def _one(p: Prepared, name: str, out_dir: Path, audit_every_cycle: bool) -> StrategyRun:
    from backtest.console import quiet_logs
    from vault.logs import configure_logging

    configure_logging("WARNING", json=True)  # a spawned worker: warnings and up, on stderr
    quiet_logs()
    return _serial(p, out_dir, [name], None, audit_every_cycle)[0]


def _parallel(
    p: Prepared,
    out_dir: Path,
    names: list[str],
    jobs: int,
    progress: Callable[[int], None] | None,
    audit_every_cycle: bool,
) -> list[StrategyRun]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from backtest.engine import cycle_times

    per = len(cycle_times(p.history, p.period_seconds))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_one, p, n, out_dir, audit_every_cycle): n for n in names}
        done: dict[str, StrategyRun] = {}
        for f in as_completed(futures):
            done[futures[f]] = f.result()
            if progress is not None:
                progress(per)
    return [done[n] for n in names]


def summary_bytes(summary: dict[str, Any]) -> bytes:
    return (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()


def write_outputs(
    summary: dict[str, Any], runs: list[StrategyRun], out_dir: Path, history: LendingHistory
) -> None:
    from backtest.report import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_bytes(summary_bytes(summary))
    chain_of = {v.id: v.chain for v in history_venues(history)}
    (out_dir / "report.html").write_text(render_html(summary, runs, chain_of))


__all__ = ["BadInput", "HistoryError", "prepare", "run_prepared", "write_outputs"]
