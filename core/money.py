"""Exact money for the ledger: integer base units of the vault's accounting asset (USD, 6 decimals).

The optimizer works in float USD; convert only at the edges, with these functions. Rounding is
always toward zero (ROUND_DOWN), so a conversion never creates value that is not there.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

USD_DECIMALS = 6
UNITS_PER_USD = 10**USD_DECIMALS
_QUANTUM = Decimal(1).scaleb(-USD_DECIMALS)


def usd_to_units(amount: float | str | Decimal) -> int:
    """USD (float, decimal string or Decimal) -> integer base units, rounded toward zero.

    Raises ValueError for NaN, infinities and strings that are not numbers.
    """
    try:
        d = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal amount: {amount!r}") from exc
    if not d.is_finite():
        raise ValueError(f"amount must be finite, got {amount!r}")
    return int(d.quantize(_QUANTUM, rounding=ROUND_DOWN).scaleb(USD_DECIMALS))


def units_to_usd(units: int) -> float:
    """Integer base units -> float USD (for the optimizer and metrics only; never back into the ledger)."""
    return units / UNITS_PER_USD


def units_to_str(units: int) -> str:
    """Integer base units -> exact decimal string, e.g. 1500000 -> '1.500000' (for APIs and JSON)."""
    return str(Decimal(units).scaleb(-USD_DECIMALS).quantize(_QUANTUM))
