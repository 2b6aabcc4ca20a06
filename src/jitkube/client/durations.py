"""Human durations (`15m`, `1h30m`, `90s`, `1d`) for `jitkube request --ttl/--timeout`."""

from __future__ import annotations

import re

from jitkube.errors import UsageError

_PART = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(text: str, *, option: str = "duration") -> int:
    """Seconds in `text` ("15m", "1h30m", "2h", "45s", "1d"); UsageError otherwise.

    A bare number is refused: is `15` minutes or seconds? The unit must be said.
    """
    value = text.strip().lower().replace(" ", "")
    if not value or _PART.sub("", value):
        raise UsageError(
            f"{option} {text!r} is not a duration", hint="use units, e.g. 15m, 1h30m, 2h, 90s"
        )
    seen: set[str] = set()
    total = 0
    for amount, unit in _PART.findall(value):
        if unit in seen:
            raise UsageError(f"{option} {text!r} repeats the unit {unit!r}")
        seen.add(unit)
        total += int(amount) * _UNITS[unit]
    return total


def format_duration(seconds: float) -> str:
    """`1h 30m`, `14m 05s`, `45s`: remaining times and TTLs for people."""
    left = max(0, int(seconds))
    days, left = divmod(left, 86_400)
    hours, left = divmod(left, 3_600)
    minutes, secs = divmod(left, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
