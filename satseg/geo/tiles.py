"""Slippy-map (XYZ) tiles: where a chip named ``...-<x>-<y>-<z>`` lies on the Earth.

OpenAerialMap and fAIr name their chips after the web-mercator tile they were cut from
(``OAM-1772464-966380-21.png``). Such a chip carries no CRS of its own, but its name places it
exactly: tile ``(x, y)`` at zoom ``z`` spans 1/2**z of the mercator square on each axis.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from satseg.errors import DataError

ORIGIN = 20037508.342789244  # half the web-mercator square, metres (EPSG:3857)
_NAME = re.compile(r"(?:^|[-_])(0|[1-9]\d*)([-_])(0|[1-9]\d*)\2(0|[1-9]\d?)$")
"""``...-X-Y-Z`` (or with ``_``, the same separator throughout): whole numbers without leading
zeros, so a date such as ``2023-05-12`` is not taken for a tile."""


@dataclass(frozen=True)
class Tile:
    """One XYZ tile: column ``x`` (west to east), row ``y`` (north to south), zoom ``z``."""

    x: int
    y: int
    z: int

    def __post_init__(self):
        if not 0 <= self.z <= 30 or not (0 <= self.x < 2 ** self.z and 0 <= self.y < 2 ** self.z):
            raise DataError(f"no tile {self.x}/{self.y} at zoom {self.z}")

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees (EPSG:4326)."""
        n = 2 ** self.z
        west, east = self.x / n * 360 - 180, (self.x + 1) / n * 360 - 180
        return west, _lat(self.y + 1, n), east, _lat(self.y, n)

    def mercator_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in metres (EPSG:3857)."""
        size = 2 * ORIGIN / 2 ** self.z
        west, north = -ORIGIN + self.x * size, ORIGIN - self.y * size
        return west, north - size, west + size, north


def _lat(y: float, n: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))


def tile_from_name(stem: str) -> Tile | None:
    """The tile a chip's file stem names (``OAM-1772464-966380-21`` -> x, y, z), or None."""
    m = _NAME.search(stem)
    if not m:
        return None
    x, y, z = int(m.group(1)), int(m.group(3)), int(m.group(4))
    try:
        return Tile(x, y, z)
    except DataError:
        return None
