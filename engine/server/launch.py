"""What every process the control plane starts needs to reach it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ControlPlaneAddress:
    """What every process needs to reach the run API."""

    url: str
    token: str
