"""The daemon: feeds -> snapshots -> decision -> moves -> ledger, on an APScheduler schedule.

Two jobs share one event loop:

* ``poll``: every adapter polls its feed; the latest snapshots (and the rejections) are kept.
* ``rebalance``: one :func:`vault.cycle.run_cycle` (replay unfinished moves, land bridge
  transfers, book accrued yield, guard, decide in a worker thread so /metrics and /healthz stay
  responsive, execute what the gate and checker pass, record it all in SQLite); the daemon reads
  its outcome for metrics, logs and the API, and passes the optimizer's memory on.

Each job runs at most once at a time (``max_instances=1``) and misses coalesce into one run.
On SIGTERM/SIGINT the scheduler stops taking new runs, the running step finishes its current
move (never starts another), and every resource is closed, well within 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import gc
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from adapters import FeedPoller
from core.money import units_to_str, usd_to_units
from core.types import NO_DIRECTIVES, Directives
from optimizer import Optimizer
from optimizer.memory import EMPTY_MEMORY, OptimizerMemory
from vault import identity as identity_mod
from vault.api import create_app
from vault.control import OperatorStore
from vault.cycle import (
    GuardHook,
    no_guard,
)
from vault.daemon_clock import FollowedClock, wall_clock
from vault.daemon_clock import read_market_clock as read_market_clock  # re-exported
from vault.daemon_jobs import CycleJobs
from vault.executor import (
    DryRunExecutor,
    Executor,
    PaperExecutor,
)
from vault.export import ExportExecutor
from vault.guard_store import GuardStore
from vault.guarding import GuardRunner, ledger_earned_usd
from vault.httpguard import GuardLimits, GuardStats, bind_listener, start_guarded_site
from vault.integrity import LedgerWatch, open_verified
from vault.ledger import Ledger, LedgerError
from vault.metrics import Metrics
from vault.operations import Operations
from vault.performance import RealizedApr
from vault.reconcile import StrandedMoney, stranded
from vault.settings import Settings, parse_listen
from vault.state import CycleState
from vault.transport import HttpTransport

log = structlog.get_logger("vault.daemon")

VERSION = "0.1.0"


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold ``data_dir/daemon.lock`` exclusively for the process's life (the OS frees it on any exit).

    Two daemons on one ledger and one simulated world would each book the other's moves as yield.
    """
    handle = open(data_dir / "daemon.lock", "a+")  # noqa: SIM115 (held open for the process life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OSError(
            f"data dir {data_dir} is in use by another yieldvault daemon (pid {holder})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class State(enum.StrEnum):
    """The daemon's lifecycle (Freqtrade's worker ``State``): what ``stop`` may assume."""

    CREATED = "created"  # built; nothing opened yet
    STARTING = "starting"  # start() is opening resources (some may be open)
    RUNNING = "running"  # every resource open, the scheduler running
    STOPPING = "stopping"
    STOPPED = "stopped"


class NotStarted(RuntimeError):
    """A resource of the daemon was used before ``start`` opened it."""


class Daemon(CycleJobs):
    """The process around :func:`vault.cycle.run_cycle`: its whole state is declared here; the
    resources ``start`` opens are None until then (read them through the properties, which
    raise :class:`NotStarted`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_dir: Path,
        registry: CollectorRegistry | None = None,
        config_path: Path | None = None,
    ):
        self.settings = settings
        self.config_dir = config_dir
        self.config_path = config_path  # re-read by a config reload (API, SIGHUP)
        self.venues = {v.id: v.to_venue() for v in settings.venues}
        self.metrics = Metrics(registry if registry is not None else CollectorRegistry())
        self.state = CycleState()
        self.realized = RealizedApr(half_life_days=1.0)
        self.clock: Callable[[], datetime] = wall_clock
        self.time_scale = 1.0  # feed seconds per wall second (the embedded market runs accelerated)
        self.started_monotonic = time.monotonic()
        self._stopping = asyncio.Event()
        self._running_jobs: set[asyncio.Task[Any]] = set()
        self._lock: IO[str] | None = None
        self._market: Any = None
        self._market_runner: Any = None
        self._api_runner: aiohttp.web.AppRunner | None = None
        self._api_server: asyncio.Server | None = None
        self._api_socket: socket.socket | None = None
        self.api_guard: GuardStats | None = None
        self.listen_url: str | None = None
        self.feeds_url: str | None = None
        self.run_state = State.CREATED
        # opened by start(), closed by stop()
        self._ledger: Ledger | None = None
        self._session: aiohttp.ClientSession | None = None
        self._poller: FeedPoller | None = None
        self._optimizer: Optimizer | None = None
        self._executor: Executor | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self.poller_root = ""  # the feeds' root URL (embedded market, settings, or none)
        self._followed: FollowedClock | None = None  # a remote simulated market's clock
        # whether feed times follow a remote simulated market is settled at root_url's first answer
        self._clock_unsettled = False
        # what one cycle passes to the next (vault/cycle.py): loaded from the ledger at start
        self.memory: OptimizerMemory = EMPTY_MEMORY
        self.directives: Directives = NO_DIRECTIVES  # the operator's, applied to every cycle
        self.guard: GuardHook = no_guard
        self.guard_state: Any = None
        self.vault_id: str | None = None  # vault/identity.py: settled by open_books()
        self.exit_only = Directives(
            exit=frozenset(v.id for v in settings.venues if v.exit_only),
            reasons={v.id: "exit_only in the config" for v in settings.venues if v.exit_only},
        )
        self.ledger_watch: LedgerWatch | None = None  # vault/integrity.py
        self.guard_store: GuardStore | None = None
        # operator side (vault/daemon_operator.py): directives, plans, reload between cycles
        self.cycle_lock = asyncio.Lock()
        self.control: OperatorStore | None = None  # data_dir/operator.sqlite3, opened by start
        self.exporter: ExportExecutor | None = None
        self.operations = Operations(self)

    # -- resources (open between start and stop) --------------------------------------------

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise NotStarted("the ledger is opened by Daemon.start()")
        return self._ledger

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise NotStarted("the HTTP session is opened by Daemon.start()")
        return self._session

    @property
    def poller(self) -> FeedPoller:
        if self._poller is None:
            raise NotStarted("the feed poller is built by Daemon.start()")
        return self._poller

    @property
    def optimizer(self) -> Optimizer:
        if self._optimizer is None:
            raise NotStarted("the optimizer is built by Daemon.start()")
        return self._optimizer

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise NotStarted("the executor is built by Daemon.start()")
        return self._executor

    # -- lifecycle --------------------------------------------------------------------------

    async def open_books(self, adopt_reason: str | None = None, *, serve_api: bool = False) -> None:
        """Lock the data dir, open the verified ledger, start the feeds' side, settle the vault's id.

        Raises LedgerIntegrityError or IdentityError (one line; the CLI exits 2) when the books
        cannot be trusted or do not belong to the venue's account. With ``adopt_reason``, a
        ledger that went missing is rebuilt from what the venue holds for this vault's id.
        """
        s = self.settings
        self.run_state = State.STARTING
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_data_dir(s.data_dir)
        self._ledger = open_verified(s.data_dir / "ledger.sqlite3")
        self.control = OperatorStore(s.data_dir / "operator.sqlite3")
        self.recover_plans()
        if serve_api:
            # bound before the embedded market asks the OS for a port, so it cannot take ours
            self._api_socket = bind_listener(*parse_listen(s.listen))
        await self._start_market()
        root_url = self.feeds_url or s.feeds.root_url or ""
        self.poller_root = root_url
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(8, s.feeds.max_concurrency)),
            raise_for_status=False,
        )
        self._clock_unsettled = self._market is None and bool(root_url) and s.vault.clock != "wall"
        await self._settle_clock()
        identity = identity_mod.resolve(self.ledger, s.data_dir, s.vault.id)
        self.vault_id = identity.vault_id
        if s.vault.mode in ("paper", "export"):
            paper = PaperExecutor(
                HttpTransport(self.session, root_url, account=identity.vault_id),
                ledger=self.ledger,
                venues=self.venues,
                home_chain=s.vault.home_chain,
                clock=self.now,
                bridge_wait_seconds=s.executor.bridge_wait_seconds,
                idempotency_window_seconds=s.reconciliation.venue_idempotency_window_seconds,
            )
            self._executor = paper
            if s.vault.mode == "export":
                # the paper booking and the venues' reads; the signer carries the moves
                self.exporter = self._executor = ExportExecutor(
                    reader=paper,
                    ledger=self.ledger,
                    store=self.control,
                    venues=self.venues,
                    plans_dir=s.data_dir / "plans",
                    deadline_seconds=s.vault.export_deadline_seconds,
                    slippage_bps=s.vault.export_slippage_bps,
                    bridge_fee_bps=s.optimizer.bridge_fee_bps,
                    wall_clock=self.wall_now,
                    clock=self.now,
                    vault_id=identity.vault_id,
                )
        else:
            self._executor = DryRunExecutor()
        if not self.ledger.is_initialised():
            held = await self.executor.venue_positions() if identity.fresh_with_known_id else {}
            why = identity_mod.refusal(identity, self.ledger, held or {})
            if why is not None and adopt_reason is None:
                raise identity_mod.IdentityError(why)
            self.ledger.set_vault_id(identity.vault_id)
            if why is not None and adopt_reason is not None:
                adopted = {v: u for v, u in (held or {}).items() if u}
                self.ledger.adopt(self.clock(), adopted, adopt_reason)
                log.warning("ledger_adopted", vault_id=identity.vault_id, reason=adopt_reason)
            else:
                self.ledger.deposit_capital(
                    self.clock(), s.vault.home_chain, usd_to_units(s.vault.initial_capital_usd)
                )
                log.info(
                    "capital_deposited",
                    usd=str(s.vault.initial_capital_usd),
                    chain=s.vault.home_chain,
                    vault_id=identity.vault_id,
                )
            identity_mod.write_id_file(s.data_dir, identity.vault_id)
        why = stranded(self.ledger, set(self.venues))
        if why is not None:
            raise StrandedMoney(why)
        self.ledger_watch = LedgerWatch.start(self.ledger)

    async def start(self) -> None:
        s = self.settings
        await self.open_books(serve_api=True)
        root_url = self.poller_root
        self._poller = FeedPoller(
            list(s.venues), s.feeds, self.session, root_url=root_url, clock=self.now
        )
        self._optimizer = Optimizer(s.limits, s.optimizer, s.vault.home_chain)
        self.memory = self._load_memory()
        # protocol-health guards (guard/): their state lives in data_dir/guards.sqlite3
        self.guard_store = GuardStore(s.data_dir)
        runner = GuardRunner(
            s.guards,
            store=self.guard_store,
            metrics=self.metrics,
            venues=list(self.venues),
            earned_usd=ledger_earned_usd(self.ledger, list(self.venues)),
        )
        self.guard, self.guard_state = runner, runner.state
        self.metrics.set_build_info(VERSION)
        self.metrics.declare_venues([(v.id, str(v.kind), v.chain) for v in self.venues.values()])
        self.metrics.set_schedule(
            s.schedule.poll_interval_seconds,
            s.schedule.rebalance_interval_seconds,
            started_at=time.time(),
        )
        self._export_portfolio()
        await self._start_api()
        scheduler = self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(s.schedule.misfire_grace_seconds),
            },
        )
        # One poll before the schedule starts, so the first rebalance already sees the venues.
        await self._job(self.poll_once)()
        now = wall_clock()
        scheduler.add_job(
            self._job(self.poll_once),
            "interval",
            seconds=s.schedule.poll_interval_seconds,
            id="poll",
            next_run_time=now + timedelta(seconds=s.schedule.poll_interval_seconds),
        )
        scheduler.add_job(
            self._job(self.rebalance_once),
            "interval",
            seconds=s.schedule.rebalance_interval_seconds,
            id="rebalance",
            next_run_time=now,
        )
        scheduler.start()
        self.run_state = State.RUNNING
        # Everything built so far lives as long as the process: move it out of the cyclic GC's
        # reach, so full collections stay short enough not to stall the event loop (> 50 ms measured).
        gc.collect()
        gc.freeze()
        b = self.ledger.balances()
        log.info(
            "daemon_started",
            listen=self.listen_url,
            feeds=root_url,
            mode=s.vault.mode,
            nav_usd=units_to_str(b.nav_units),
            positions=len([u for u in b.positions_units.values() if u]),
        )

    def _load_memory(self) -> OptimizerMemory:
        """The optimizer memory of the last rebalance in the ledger, so a restart resumes where
        the last run left off; a damaged one is logged and the optimizer starts cold."""
        try:
            stored = self.ledger.last_memory()
            memory = EMPTY_MEMORY if stored is None else OptimizerMemory.from_json(stored)
        except (ValueError, LedgerError) as exc:
            log.warning("optimizer_memory_unreadable", error=str(exc))
            return EMPTY_MEMORY
        if stored is not None:
            log.info("optimizer_memory_loaded", cycle=memory.cycle, venues=len(memory.last_seen))
        return memory

    async def _start_api(self) -> None:
        host, port = parse_listen(self.settings.listen)
        self._api_runner = aiohttp.web.AppRunner(create_app(self), access_log=None)
        await self._api_runner.setup()
        # a header timeout, a short keep-alive and a connection cap (vault/httpguard.py)
        self._api_server, self.api_guard = await start_guarded_site(
            self._api_runner, host, port, GuardLimits(), sock=self._api_socket
        )
        self._api_socket = None  # the server owns it now
        bound = self._api_server.sockets[0].getsockname()
        self.listen_url = f"http://{host}:{bound[1]}"

    def _job(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """The scheduler's entry for ``fn``: the work runs in a task of its own, shielded.

        APScheduler's shutdown cancels the tasks it started; a cancelled move is a move whose
        outcome is unknown. So the scheduler's task only waits (shielded) on ours, and ``stop()``
        lets ours finish the move in progress (never starting another) before it closes anything.
        """

        async def work() -> None:
            try:
                await fn()
            except Exception:
                # a job never takes the daemon down: it logs, and the job's last-success time
                # stops advancing (the staleness alerts on yieldvault_last_success_timestamp_seconds)
                log.exception("job_failed", job=fn.__name__)

        async def run() -> None:
            if self._stopping.is_set():
                return
            task = asyncio.ensure_future(work())
            self._running_jobs.add(task)
            task.add_done_callback(self._running_jobs.discard)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

        run.__name__ = fn.__name__
        return run

    async def stop(self, timeout_seconds: float = 7.0) -> None:
        """Stop taking new runs, let the running step finish its current move, close everything.

        Safe after a start that failed part-way: it closes only what was opened.
        """
        self._stopping.set()
        self.run_state = State.STOPPING
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
        if self._running_jobs:
            _, pending = await asyncio.wait(set(self._running_jobs), timeout=timeout_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._poller is not None:
            await self._poller.close()
        if self._session is not None:
            await self._session.close()
        if self._api_server is not None:
            self._api_server.close()
        if self._api_socket is not None:  # bound, never served (start() failed before the API)
            self._api_socket.close()
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        if self._market_runner is not None:
            await self._market_runner.stop()
        if self.ledger_watch is not None:
            self.ledger_watch.close_ledger()  # closes the ledger too, never into a lost file
        elif self._ledger is not None:
            self._ledger.close()
        if self.guard_store is not None:
            self.guard_store.close()
        if self.control is not None:
            self.control.close()
        if self._lock is not None:
            self._lock.close()
        self.run_state = State.STOPPED
        log.info("daemon_stopped")
