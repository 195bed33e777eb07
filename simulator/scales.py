"""Scale tiers of the simulator (PRODUCT.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    tenants: int
    leads: int
    lead_activities: int
    deals: int
    email_events: int
    reps_per_tenant: int


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", 2, 500, 10_000, 100, 5_000, 4),
    "small": Scale("small", 5, 5_000, 150_000, 1_000, 60_000, 6),
    "medium": Scale("medium", 20, 100_000, 3_000_000, 20_000, 1_500_000, 10),
    "large": Scale("large", 50, 1_000_000, 30_000_000, 200_000, 15_000_000, 20),
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}: use one of {', '.join(SCALES)}") from None
