"""Paper execution: deposits, withdrawals (instant or queued) and bridge transfers against the
simulated pools, exact in ``Decimal``, each idempotent by its key (a repeat returns the first
answer, a different request with the same key is a 409). These are plain methods: the HTTP
handlers (:mod:`mockfeeds.routes.paper`) and in-process callers use the same ones."""

from __future__ import annotations

import hashlib
from decimal import ROUND_DOWN, Decimal
from typing import Any

from mockfeeds.state import DEC, DEFAULT_ACCOUNT, Q6, MarketError, iso, usd_str
from mockfeeds.stepping import Stepping
from mockfeeds.venues import StakingVenue
from protocols import across


class PaperDesk(Stepping):
    """Our paper positions' writes and views, idempotent by key."""

    def _idempotent(self, key: Any, op: str, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(key, str) or not 1 <= len(key) <= 200:
            raise MarketError("idempotency_key", "must be a string of 1 to 200 characters")
        rec = self.idempotency.get(self.scoped_key(key))
        if rec is None:
            return None
        if rec["op"] != op or rec["fingerprint"] != fingerprint:
            raise MarketError(
                "idempotency_key",
                f"already used for a different request ({rec['op']} {rec['fingerprint']})",
                409,
            )
        return rec["response"]

    def _remember(
        self, key: str, op: str, fingerprint: dict[str, Any], response: dict[str, Any]
    ) -> dict[str, Any]:
        self.idempotency[self.scoped_key(key)] = {
            "op": op,
            "fingerprint": fingerprint,
            "response": response,
            "at": self.state_time,
        }
        self.version += 1
        self.dirty = True
        return response

    def _account_field(self) -> dict[str, str]:
        """Records of a named paper account carry it (the default account's stay as they were)."""
        return {} if self.account == DEFAULT_ACCOUNT else {"account": self.account}

    @staticmethod
    def parse_amount(raw: Any, field: str = "amount_usd") -> Decimal:
        """A positive USD decimal string with at most 6 decimals -> Decimal (MarketError otherwise)."""
        if not isinstance(raw, str):
            raise MarketError(field, 'must be a decimal string, e.g. "1000.000000"')
        try:
            d = Decimal(raw.strip())
        except ArithmeticError:
            raise MarketError(field, f"not a decimal number: {raw!r}") from None
        if not d.is_finite():
            raise MarketError(field, "must be finite")
        if d <= 0:
            raise MarketError(field, "must be > 0")
        if d != d.quantize(Q6, rounding=ROUND_DOWN):
            raise MarketError(field, "at most 6 decimals")
        if d > Decimal("1e12"):
            raise MarketError(field, "must be <= 1000000000000")
        return d

    def deposit(self, venue_id: Any, amount_usd: Any, idempotency_key: Any) -> dict[str, Any]:
        """Supply ``amount_usd`` to a venue. The pool state changes at once (utilization, TVL, share)."""
        self.sync()
        amount = self.parse_amount(amount_usd)
        fp = {"venue": venue_id, "amount_usd": usd_str(amount)}
        prior = self._idempotent(idempotency_key, "deposit", fp)
        if prior is not None:
            return prior
        v = self.venue(venue_id)
        if v.paused:
            raise MarketError("venue", f"venue {v.id} is paused (exploit scenario)")
        if v.halted:
            raise MarketError("venue", f"venue {v.id} is halted (bridge halt scenario)")
        if v.kind == "fixed":
            fc = v.cfg.fixed
            assert fc is not None
            if float(amount) < fc.min_purchase_usd:
                raise MarketError(
                    "amount_usd", f"below the product's minimum purchase {fc.min_purchase_usd}"
                )
        limit = v.deposit_limit_usd(self)
        if float(amount) > limit:
            raise MarketError("amount_usd", f"exceeds the venue's remaining capacity {limit:.6f}")
        cost = v.entry_cost_fraction(float(amount), self)
        applied = DEC.multiply(amount, Decimal(repr(1.0 - cost))).quantize(Q6, rounding=ROUND_DOWN)
        mark = self.mark(v.id)
        tokens = DEC.divide(applied, mark)
        self.positions[v.id] = self.positions.get(v.id, Decimal(0)) + tokens
        v.on_deposit(float(applied), self)
        v.ours_usd = self.ours_total_usd(v.id)
        resp = {
            "venue": v.id,
            "action": "deposit",
            "status": "completed",
            "amount_usd": usd_str(amount),
            "applied_usd": usd_str(applied),
            "fee_usd": usd_str(amount - applied),
            "position_usd": self.position_usd(v.id),
            "idempotency_key": idempotency_key,
            "sim_time": iso(self.state_time),
        }
        return self._remember(idempotency_key, "deposit", fp, resp)

    def withdraw(self, venue_id: Any, amount_usd: Any, idempotency_key: Any) -> dict[str, Any]:
        """Take ``amount_usd`` out. Bounded by our position and by what the pool can pay now
        (lending: available liquidity; crunch scenarios: the cap). Queued venues (staking queue,
        fixed-product redemption) reduce the position now and pay out at ``settles_at``."""
        self.sync()
        amount = self.parse_amount(amount_usd)
        fp = {"venue": venue_id, "amount_usd": usd_str(amount)}
        prior = self._idempotent(idempotency_key, "withdraw", fp)
        if prior is not None:
            return prior
        v = self.venue(venue_id)
        if v.paused:
            raise MarketError(
                "venue", f"venue {v.id} is paused (exploit scenario); withdrawals are refused"
            )
        if v.halted:
            raise MarketError(
                "venue", f"venue {v.id} is halted (bridge halt scenario); inventory is stuck"
            )
        pos = self.position_usd_dec(v.id)
        if amount > pos:
            raise MarketError("amount_usd", f"exceeds position {usd_str(pos)}")
        available = v.available_usd(self) * float(self.mark(v.id))
        if float(amount) > available + 1e-9:
            raise MarketError("amount_usd", f"exceeds available liquidity {available:.2f}")
        delay = v.withdrawal_delay_seconds(float(amount), self.state_time, self)
        # what leaving costs (a loop's unwind swap, an NFT sold below floor): the position shrinks
        # by ``amount``, the payout is ``applied``; 0 for the other kinds
        cost = v.exit_cost_fraction(float(amount), self)
        applied = (
            amount
            if cost <= 0
            else DEC.multiply(amount, Decimal(repr(1.0 - min(cost, 1.0)))).quantize(
                Q6, rounding=ROUND_DOWN
            )
        )
        mark = self.mark(v.id)
        tokens = DEC.divide(amount, mark)
        if amount == pos:
            tokens = self.positions[v.id]
        self.positions[v.id] = max(self.positions[v.id] - tokens, Decimal(0))
        v.on_withdraw(float(amount), self)
        v.ours_usd = self.ours_total_usd(v.id)
        resp: dict[str, Any] = {
            "venue": v.id,
            "action": "withdraw",
            "amount_usd": usd_str(amount),
            "applied_usd": usd_str(applied),
            "fee_usd": usd_str(amount - applied),
            "position_usd": self.position_usd(v.id),
            "idempotency_key": idempotency_key,
            "sim_time": iso(self.state_time),
        }
        if delay > 0:
            wid = "w-" + hashlib.sha256(self.scoped_key(idempotency_key).encode()).hexdigest()[:16]
            settles = self.state_time + delay
            rec = {
                "withdrawal_id": wid,
                "venue": v.id,
                "amount_usd": usd_str(applied),  # what arrives
                "requested_at": iso(self.state_time),
                "settles_at": iso(settles),
                "settles_at_ts": settles,
                "status": "pending",
                **self._account_field(),
            }
            if isinstance(v, StakingVenue):
                eth = float(amount) / self.eth_usd
                rec["amount_eth"] = eth
                v.ours_queued_eth += eth
                v.queue_eth += eth
            self.withdrawals[wid] = rec
            resp.update(status="queued", withdrawal_id=wid, settles_at=iso(settles))
        else:
            resp.update(status="completed", withdrawal_id=None, settles_at=iso(self.state_time))
        return self._remember(idempotency_key, "withdraw", fp, resp)

    def bridge(
        self, from_chain: Any, to_chain: Any, amount_usd: Any, idempotency_key: Any
    ) -> dict[str, Any]:
        """Bridge the accounting token between chains through Across: fee = LP + capital + gas,
        arrival after the fill time (delayed while a bridge halt covers either chain)."""
        self.sync()
        amount = self.parse_amount(amount_usd)
        fp = {"from_chain": from_chain, "to_chain": to_chain, "amount_usd": usd_str(amount)}
        prior = self._idempotent(idempotency_key, "bridge", fp)
        if prior is not None:
            return self.transfer(prior["transfer_id"])
        for field, chain in (("from_chain", from_chain), ("to_chain", to_chain)):
            if not isinstance(chain, str) or chain not in self.cfg.chains:
                raise MarketError(
                    field, f"unknown chain {chain!r}; known: {sorted(self.cfg.chains)}"
                )
            if self.cfg.bridge.token not in self.cfg.chains[chain].tokens:
                raise MarketError(field, f"chain {chain} has no {self.cfg.bridge.token}")
            if self.halted_chains.get(chain, 0.0) > self.state_time:
                raise MarketError(
                    field, f"bridging on {chain} is halted until {iso(self.halted_chains[chain])}"
                )
        if from_chain == to_chain:
            raise MarketError("to_chain", "must differ from from_chain")
        b = self.cfg.bridge
        amt = float(amount)
        if amt < b.min_deposit_usd:
            raise MarketError(
                "amount_usd", f"below the route's minimum deposit {b.min_deposit_usd}"
            )
        if amt > b.max_deposit_usd:
            raise MarketError(
                "amount_usd", f"exceeds the route's maximum deposit {b.max_deposit_usd}"
            )
        limits = self.route_limits_usd(from_chain, to_chain)
        pct = self.bridge_fee_pct(
            amt, self.route_rate_model(from_chain, to_chain), include_gas=True, to_chain=to_chain
        )
        fee = DEC.multiply(amount, Decimal(repr(pct))).quantize(Q6, rounding=ROUND_DOWN)
        fee = min(fee, amount)
        fill = across.fill_time_seconds(
            amt,
            self.cfg.chains[from_chain].instant_fill_seconds,
            limits["maxDepositInstant"],
            limits["maxDepositShortDelay"],
        )
        tid = "t-" + hashlib.sha256(self.scoped_key(idempotency_key).encode()).hexdigest()[:16]
        arrives = self.state_time + fill
        rec = {
            "transfer_id": tid,
            "from_chain": from_chain,
            "to_chain": to_chain,
            "amount_usd": usd_str(amount),
            "fee_usd": usd_str(fee),
            "received_usd": usd_str(amount - fee),
            "created_at": iso(self.state_time),
            "arrives_at": iso(arrives),
            "arrives_at_ts": arrives,
            "status": "in_flight",
            **self._account_field(),
            "idempotency_key": idempotency_key,
        }
        self.transfers[tid] = rec
        self._remember(idempotency_key, "bridge", fp, {"transfer_id": tid})
        return self.transfer(tid)

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        self.sync()
        rec = self.transfers.get(transfer_id)
        if rec is None:
            raise MarketError("transfer_id", f"unknown transfer {transfer_id!r}", 404)
        out = {k: v for k, v in rec.items() if not k.endswith("_ts")}
        out["sim_time"] = iso(self.state_time)
        return out

    def bridge_replay(self, idempotency_key: str) -> dict[str, Any] | None:
        rec = self.idempotency.get(self.scoped_key(idempotency_key))
        if rec is None or rec["op"] != "bridge":
            return None
        return self.transfer(rec["response"]["transfer_id"])

    def withdrawal(self, withdrawal_id: str) -> dict[str, Any]:
        self.sync()
        rec = self.withdrawals.get(withdrawal_id)
        if rec is None:
            raise MarketError("withdrawal_id", f"unknown withdrawal {withdrawal_id!r}", 404)
        return {k: v for k, v in rec.items() if not k.endswith("_ts") and k != "amount_eth"}

    def positions_view(self) -> dict[str, Any]:
        self.sync()
        pending: dict[str, Decimal] = {}
        for w in self.withdrawals.values():
            if w["status"] == "pending" and w.get("account", DEFAULT_ACCOUNT) == self.account:
                pending[w["venue"]] = pending.get(w["venue"], Decimal(0)) + Decimal(w["amount_usd"])
        in_flight = sum(
            (
                Decimal(t["amount_usd"])
                for t in self.transfers.values()
                if t["status"] == "in_flight" and t.get("account", DEFAULT_ACCOUNT) == self.account
            ),
            Decimal(0),
        )
        rows = []
        for v in self.venues:
            if v.id in self.positions or v.id in pending:
                rows.append(
                    {
                        "venue": v.id,
                        "position_usd": self.position_usd(v.id),
                        "pending_withdrawal_usd": usd_str(pending.get(v.id, Decimal(0))),
                    }
                )
        return {
            "positions": rows,
            "in_flight_bridge_usd": usd_str(in_flight),
            "sim_time": iso(self.state_time),
        }
