"""Durations as people write them (``45m``, ``1h30m``) and as the tool prints them."""

from __future__ import annotations

import re

from batch.errors import ConfigError

__all__ = ["format_duration", "parse_duration", "short_duration"]

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str, name: str) -> float:
    """``90``, ``90s``, ``45m``, ``2h``, ``1h30m`` -> seconds; ConfigError naming ``name``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ConfigError(f"invalid {name} {text!r}: use e.g. 900s, 45m, 2h or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ConfigError(f"invalid {name} {text!r}: must be longer than zero")
    return total


def format_duration(seconds: float) -> str:
    """``3725`` -> ``1h02m05s``; ``65`` -> ``1m05s``; ``5`` -> ``5s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def short_duration(seconds: float) -> str:
    """As people write it, zero parts left out: ``180`` -> ``3m``, ``5400`` -> ``1h30m``."""
    whole = round(seconds)
    if whole <= 0:
        return f"{seconds:g}s" if seconds > 0 else "0"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value)
