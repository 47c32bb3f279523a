"""The witness service's one JSON answer (its others are C2SP text)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class WitnessHealth(BaseModel):
    status: Literal["ok"]
    witness: str
