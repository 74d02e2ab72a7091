"""DefiLlama-shaped rendering of the world: the ``/pools`` rows with their statistics, the daily
history behind ``/chart`` (recorded at each day boundary), and the serialized body cache."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from mockfeeds.pricing import Pricing
from mockfeeds.state import iso
from mockfeeds.venues import DAY, LpVenue, VenueModel


class FeedRows(Pricing):
    """DefiLlama ``/pools`` rows and ``/chart`` history, built once per world version."""

    def _row_now(self, v: VenueModel) -> dict[str, Any]:
        base = v.base_apr(self) * 100.0
        reward = v.reward_apr(self) * 100.0
        return {
            "tvlUsd": v.tvl_usd(self),
            "apyBase": base,
            "apyReward": reward if reward > 0 else None,
            "apy": max(0.0, base + reward),
        }

    def _record_day(self) -> None:
        day_end = math.floor(self.state_time / DAY) * DAY - 0.001
        for v in self.venues:
            r = self._row_now(v)
            il7 = v.il_7d(self) if isinstance(v, LpVenue) else None
            extra = v.extra_row(self) if isinstance(v, LpVenue) else {}
            self.history[v.id].append(
                {
                    "timestamp": iso(day_end),
                    "tvlUsd": r["tvlUsd"],
                    "apy": r["apy"],
                    "apyBase": r["apyBase"],
                    "apyReward": r["apyReward"],
                    "il7d": il7 * 100.0 if il7 is not None else None,
                    "apyBase7d": extra.get("apyBase7d"),
                }
            )

    def defillama_rows(self) -> list[tuple[str, dict[str, Any]]]:
        """(venue id, /pools row) for every venue, all 28 documented fields (built once per version)."""
        return self.cached("defillama_rows", self._build_defillama_rows)

    def _build_defillama_rows(self) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        stats = []
        for vc, v in zip(self.cfg.venues, self.venues, strict=True):
            now = self._row_now(v)
            hist = self.history[v.id]
            apys = [h["apy"] for h in hist]
            n = len(apys)

            def pct(days: int, apys: list[float] = apys, now: dict[str, Any] = now) -> float | None:
                return now["apy"] - apys[-days] if len(apys) >= days else None

            if n:
                daily = np.power(1.0 + np.asarray(apys) / 100.0, 1.0 / 365.0) - 1.0
                mu = (math.exp(float(np.mean(np.log1p(daily))) * 365.0) - 1.0) * 100.0
                sigma = float(np.sqrt(np.var(daily) * 365.0)) * 100.0
            else:
                mu, sigma = now["apy"], 0.0
            stats.append((mu, sigma))
            last7 = apys[-7:]
            if n >= 7 and now["apy"] > 0:
                trend = now["apy"] - float(np.mean(last7))
                prob = min(95.0, 55.0 + 400.0 * abs(trend) / max(now["apy"], 1e-9))
                predictions = {
                    "predictedClass": "Down" if trend < 0 else "Stable/Up",
                    "predictedProbability": round(prob, 0),
                    "binnedConfidence": 1 if prob < 70 else (2 if prob < 85 else 3),
                }
            else:
                predictions = {
                    "predictedClass": None,
                    "predictedProbability": None,
                    "binnedConfidence": None,
                }
            extra = v.extra_row(self)
            il7 = v.il_7d(self) if isinstance(v, LpVenue) else None
            row = {
                "chain": self.cfg.chains[v.chain].defillama_name,
                "project": vc.defillama.project or vc.protocol,
                "symbol": vc.defillama.symbol or vc.asset.upper(),
                "tvlUsd": now["tvlUsd"],
                "apyBase": now["apyBase"],
                "apyReward": now["apyReward"],
                "apy": now["apy"],
                "rewardTokens": extra["rewardTokens"],
                "pool": vc.pool_uuid,
                "apyPct1D": pct(1),
                "apyPct7D": pct(7),
                "apyPct30D": pct(30),
                "stablecoin": extra["stablecoin"],
                "ilRisk": extra["ilRisk"],
                "exposure": extra["exposure"],
                "predictions": predictions,
                "poolMeta": vc.defillama.pool_meta,
                "mu": mu,
                "sigma": sigma,
                "count": n,
                "outlier": False,
                "underlyingTokens": extra["underlyingTokens"],
                "il7d": il7 * 100.0 if il7 is not None else None,
                "apyBase7d": extra["apyBase7d"],
                "apyMean30d": float(np.mean(apys[-30:])) if n else now["apy"],
                "volumeUsd1d": extra["volumeUsd1d"],
                "volumeUsd7d": extra["volumeUsd7d"],
                "apyBaseInception": None,
            }
            out.append((v.id, row))
        if len(stats) >= 4:
            arr = np.asarray(stats)
            bounds = []
            for k in range(2):
                q1, q3 = np.percentile(arr[:, k], [25, 75])
                iqr = q3 - q1
                bounds.append((max(0.0, q1 - 1.5 * iqr), q3 + 1.5 * iqr))
            for (_, row), (mu, sigma) in zip(out, stats, strict=True):
                row["outlier"] = not (
                    bounds[0][0] <= mu <= bounds[0][1] and bounds[1][0] <= sigma <= bounds[1][1]
                )
        return out

    def defillama_pools_bytes(self) -> bytes:
        """The serialized /pools body, built once per world version (fast for 1,000+ venues)."""
        return self.cached(
            "defillama_pools_bytes",
            lambda: json.dumps(
                {"status": "success", "data": [r for _, r in self.defillama_rows()]},
                separators=(",", ":"),
            ).encode(),
        )

    def chart_rows(self, venue_id: str) -> list[dict[str, Any]]:
        v = self.by_id[venue_id]
        rows = list(self.history[venue_id])
        now = self._row_now(v)
        il7 = v.il_7d(self) if isinstance(v, LpVenue) else None
        extra = v.extra_row(self)
        rows.append(
            {
                "timestamp": iso(self.state_time),
                "tvlUsd": now["tvlUsd"],
                "apy": now["apy"],
                "apyBase": now["apyBase"],
                "apyReward": now["apyReward"],
                "il7d": il7 * 100.0 if il7 is not None else None,
                "apyBase7d": extra.get("apyBase7d"),
            }
        )
        return rows
