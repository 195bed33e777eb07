"""Vectorized building blocks of the simulator: deterministic UUIDs, timestamps, choices, COPY."""

from __future__ import annotations

import numpy as np
import polars as pl

from ingest.pg_copy import copy_frame, pg_array  # noqa: F401  (re-exported for the simulator)

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Byte positions of the 32 hex digits inside the 36-character UUID text.
_UUID_POS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def uuids(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` version-4 UUIDs as text, drawn from ``rng`` (so deterministic by seed)."""
    if n == 0:
        return pl.Series([], dtype=pl.String)
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_POS] = digits
    return pl.Series(text.view("S36").ravel()).cast(pl.String)


def hexes(rng: np.random.Generator, n: int, length: int) -> pl.Series:
    """``n`` random lowercase hex strings of ``length`` digits."""
    digits = _HEX[rng.integers(0, 16, size=(n, length))]
    return pl.Series(np.ascontiguousarray(digits).view(f"S{length}").ravel()).cast(pl.String)


def pick(rng: np.random.Generator, values, n: int, p=None) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    if p is not None:
        p = np.asarray(p, dtype=float)
        p = p / p.sum()
    return values[rng.choice(len(values), size=n, p=p)]


def day_weights(start_us: int, days: int) -> np.ndarray:
    """Business rhythm per day: weekdays busy, weekends quiet, construction season in spring/summer."""
    day_index = np.arange(days)
    day_us = start_us + day_index * US_PER_DAY
    dates = day_us.astype("datetime64[us]").astype("datetime64[D]")
    weekday = (dates.astype(np.int64) + 3) % 7  # 0 = Monday
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
    season = 1.0 + 0.35 * np.sin(2 * np.pi * (doy - 60) / 365.25)
    week = np.where(weekday < 5, 1.0, 0.25)
    return week * season


def business_times(rng: np.random.Generator, n: int, start_us: int, end_us: int) -> np.ndarray:
    """``n`` timestamps (µs since epoch) in [start_us, end_us) following the business rhythm."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    first_day = start_us - start_us % US_PER_DAY
    days = max(1, int(-(-(end_us - first_day) // US_PER_DAY)))
    w = day_weights(first_day, days)
    day = rng.choice(days, size=n, p=w / w.sum())
    # office hours in US time zones: centred on 17:00 UTC, spread ±4 h
    hour_us = np.clip(rng.normal(17.0, 2.8, size=n), 0, 23.99) * US_PER_HOUR
    t = first_day + day * US_PER_DAY + hour_us.astype(np.int64)
    t = np.where((t < start_us) | (t >= end_us), rng.integers(start_us, max(start_us + 1, end_us), size=n), t)
    return t.astype(np.int64)


def after(rng: np.random.Generator, base_us: np.ndarray, mean_days: float, end_us: int) -> np.ndarray:
    """Times an exponential delay after ``base_us``, folded back into [base, end) when past ``end_us``."""
    base_us = np.asarray(base_us, dtype=np.int64)
    t = base_us + (rng.exponential(mean_days, size=len(base_us)) * US_PER_DAY).astype(np.int64)
    span = np.maximum(end_us - base_us, 1)
    late = t >= end_us
    t[late] = base_us[late] + (rng.random(int(late.sum())) * span[late]).astype(np.int64)
    return np.minimum(t, end_us - 1)  # a base at or past the end stays inside the window


def ts(us: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(us, dtype=np.int64)).cast(pl.Datetime("us"))


def objs(values):
    """NumPy object arrays (str/None) as plain lists, which Polars builds String columns from."""
    return values.tolist() if isinstance(values, np.ndarray) else values
