"""Persistence of the whole world: one JSON document (pools, prices, RNG states, positions,
queues, transfers, idempotency records, scenarios, faults, histories), written atomically
(temp file in the same directory, fsync, ``os.replace``) and loaded on start."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from mockfeeds.faults import FaultRule
from mockfeeds.state import DEFAULT_ACCOUNT, STATE_VERSION, MarketState


class Persistence(MarketState):
    """Dump, load and atomically save the world's state."""

    _dumps_taken: int = 0  # numbers each dump, so an older one never replaces a newer on disk

    def dump_state(self) -> dict[str, Any]:
        """The whole world as plain JSON-able data, sharing nothing mutable with the live world
        (a deep copy of the small parts; the history rows are never changed once appended), so
        it can be encoded and written off the event loop while the world moves on."""
        small = copy.deepcopy(
            {
                "marks": self.marks,
                "halted_chains": self.halted_chains,
                "scheduled_started": self.scheduled_started,
                "venues": {v.id: v.dump() for v in self.venues},
                "withdrawals": self.withdrawals,
                "transfers": self.transfers,
                "idempotency": self.idempotency,
                "scenarios": self.scenarios,
            }
        )
        return {
            "version": STATE_VERSION,
            "seed": self.cfg.seed,
            "state_time": self.state_time,
            "ticks": self.ticks,
            "seq": self._seq,
            "rng": self.rng.bit_generator.state,
            "fault_rng": self.fault_rng.bit_generator.state,
            "eth_usd": self.eth_usd,
            "hub_u": self.hub_u,
            "basis_bps": self.basis_bps,
            "marks": small["marks"],
            "halted_chains": small["halted_chains"],
            "scheduled_started": small["scheduled_started"],
            "venues": small["venues"],
            # the default account's, as before; the named accounts (vault ids) apart
            "positions": {k: str(p) for k, p in self.books().get(DEFAULT_ACCOUNT, {}).items()},
            "accounts": {
                a: {k: str(p) for k, p in b.items()}
                for a, b in self.books().items()
                if a != DEFAULT_ACCOUNT and b
            },
            "withdrawals": small["withdrawals"],
            "transfers": small["transfers"],
            "idempotency": small["idempotency"],
            "scenarios": small["scenarios"],
            "faults": {fid: r.public() for fid, r in self.faults.items()},
            "history": {k: list(h) for k, h in self.history.items()},
            "price_history": {k: list(h) for k, h in self.price_history.items()},
        }

    def _load(self, d: dict[str, Any]) -> None:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"state file version {d.get('version')!r} is not {STATE_VERSION}")
        self.state_time = float(d["state_time"])
        self.ticks = int(d["ticks"])
        self._seq = int(d.get("seq", 0))
        self.rng.bit_generator.state = d["rng"]
        self.fault_rng.bit_generator.state = d["fault_rng"]
        self.eth_usd = float(d["eth_usd"])
        self.hub_u = float(d["hub_u"])
        self.basis_bps.update(
            {k: float(v) for k, v in d["basis_bps"].items() if k in self.basis_bps}
        )
        self.marks = {k: float(v) for k, v in d["marks"].items()}
        self.halted_chains = {k: float(v) for k, v in d["halted_chains"].items()}
        self.scheduled_started = [int(i) for i in d.get("scheduled_started", [])]
        for vid, vs in d["venues"].items():
            if vid in self.by_id:
                self.by_id[vid].load(vs)
        self.positions = {k: Decimal(v) for k, v in d["positions"].items() if k in self.by_id}
        self.account = DEFAULT_ACCOUNT
        self.other_accounts = {
            a: {k: Decimal(v) for k, v in b.items() if k in self.by_id}
            for a, b in d.get("accounts", {}).items()
        }
        self.withdrawals = d["withdrawals"]
        self.transfers = d["transfers"]
        self.idempotency = d["idempotency"]
        self.scenarios = d["scenarios"]
        self.faults = {}
        for fid, spec in d["faults"].items():
            spec = {k: v for k, v in spec.items() if k not in ("id", "hits")}
            self.faults[fid] = FaultRule(id=fid, **spec)
        for k, rows in d["history"].items():
            if k in self.history:
                self.history[k].extend(rows)
        for k, rows in d["price_history"].items():
            if k in self.price_history:
                self.price_history[k].extend(rows)
        self.version += 1

    def save(self, path: Path | None = None) -> Path | None:
        """Write the whole world atomically (temp file in the same directory + os.replace)."""
        target = Path(path) if path is not None else self.state_path
        if target is None:
            return None
        self.write_state(self._numbered_state(), target)
        self.dirty = False
        return target

    def _numbered_state(self) -> tuple[int, dict[str, Any]]:
        self._dumps_taken += 1
        return self._dumps_taken, self.dump_state()

    def write_state(self, numbered: tuple[int, dict[str, Any]], target: Path) -> None:
        """Encode a ``dump_state`` and write it atomically: CPU and I/O on data the world no
        longer touches, so safe in a worker thread. Writers take turns, and a dump older than
        the one already on disk is dropped: a slow background save never replaces the state a
        paper fill has just made durable."""
        number, state = numbered
        lock = self.__dict__.setdefault("_write_lock", threading.Lock())
        on_disk: dict[Path, int] = self.__dict__.setdefault("_dump_on_disk", {})
        with lock:
            if number <= on_disk.get(target, 0):
                return
            self._write_file(state, target)
            on_disk[target] = number

    @staticmethod
    def _write_file(state: dict[str, Any], target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def save_if_dirty(self) -> None:
        if self.dirty and self.state_path is not None:
            self.save()

    async def save_if_dirty_off_loop(self) -> None:
        """``save_if_dirty`` with the encoding and the fsync in a worker thread (a world's JSON
        takes ~30 ms to encode: on the loop it would stall every request the server holds)."""
        if not self.dirty or self.state_path is None:
            return
        numbered, target = self._numbered_state(), self.state_path
        self.dirty = False  # a change made while the thread writes marks it dirty again
        try:
            await asyncio.to_thread(self.write_state, numbered, target)
        except BaseException:
            self.dirty = True
            raise
