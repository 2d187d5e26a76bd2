"""Durations (`90s`, `5m`) and sizes (`25MB`) as the spec writes them."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s?(B|KB|MB|GB|KiB|MiB|GiB)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_BYTES = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_duration(value: int | float | str) -> float:
    """Seconds in `value`: a number of seconds, or text like `90s`, `5m`, `1h`, `250ms`."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '90s', '5m', '1h'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value} is negative; a duration is zero or more seconds")
        return float(value)
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration; write seconds or e.g. '90s', '5m', '1h'")
    return float(match[1]) * _SECONDS[match[2]]


def parse_size(value: int | str) -> int:
    """Bytes in `value`: a whole number of bytes, or text like `25MB`, `512KiB`."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or text like '25MB', '512KiB'")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{value} is not a size; give at least 1 byte")
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a size; write bytes or e.g. '25MB', '512KiB'")
    return int(float(match[1]) * _BYTES[match[2]])
