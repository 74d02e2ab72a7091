"""What every section of the market YAML schema shares: the frozen, extra-forbidding base model
and the constrained number and address types (``mockfeeds/config.py`` has the whole schema)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from protocols import aave

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Unit = Annotated[float, Field(ge=0, le=1)]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def known_aave_strategy(v: str | dict[str, float]) -> str | dict[str, float]:
    """An Aave rate strategy: a preset's name (``protocols.aave.PRESETS``) or its fields."""
    if isinstance(v, str) and v not in aave.PRESETS:
        raise ValueError(f"unknown Aave preset {v!r}; known: {sorted(aave.PRESETS)}")
    if isinstance(v, dict):
        aave.AaveRateStrategy(**v)
    return v
