"""A static pinhole camera mounted high on the front wall of a box-shaped room.

Everything in the world lives in metres on the floor plane (x across, z away from the camera, y up)
and is projected here, so perspective is consistent by construction: a person twice as far away is
half as tall, feet further away sit higher in the image, and walking speed is the same in metres
whatever the resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Camera", "RoomShape", "make_camera"]


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    f: float  # focal length in pixels
    cx: float  # image x of the optical axis
    horizon: float  # image y of the horizon (the camera looks slightly down, so it is near the top)
    cam_height: float  # metres above the floor

    def project(self, x: float, y: float, z: float) -> tuple[float, float]:
        """Image position of the world point (x across, y up, z depth), all in metres."""
        return self.cx + self.f * x / z, self.horizon + self.f * (self.cam_height - y) / z

    def floor_y(self, z: float) -> float:
        """Image row of the floor at depth ``z``."""
        return self.horizon + self.f * self.cam_height / z

    def depth_of_row(self, row: float) -> float:
        """Depth of the floor seen at image row ``row`` (must be below the horizon)."""
        return self.f * self.cam_height / (row - self.horizon)

    def view_limits(self, z: float) -> tuple[float, float]:
        """World x range the camera sees at depth ``z``: (left edge, right edge) in metres."""
        return -self.cx / self.f * z, (self.width - self.cx) / self.f * z

    def half_view(self, z: float) -> float:
        """Half the width in metres of what the camera sees at depth ``z``, measured from x = 0."""
        return min(self.cx, self.width - self.cx) / self.f * z


@dataclass(frozen=True)
class RoomShape:
    """The room box: back wall at ``z_back``, side walls at ``x = ±half_width``."""

    half_width: float
    z_back: float
    wall_height: float


def make_camera(rng: np.random.Generator, width: int, height: int) -> tuple[Camera, RoomShape]:
    """Draw a plausible wall-mounted camera and the room it looks into."""
    f = height * float(rng.uniform(0.95, 1.15))
    cx = width / 2 + width * float(rng.uniform(-0.04, 0.04))
    horizon = height * float(rng.uniform(0.1, 0.2))
    cam_height = float(rng.uniform(2.1, 2.6))
    cam = Camera(width, height, f, cx, horizon, cam_height)
    # Place the back wall so its foot is 40-50 % down the frame: enough wall for furniture and
    # windows, enough floor for people to walk at a range of depths (and so of sizes).
    wall_row = height * float(rng.uniform(0.4, 0.5))
    z_back = cam.depth_of_row(wall_row)
    # A room a bit narrower than the view at the back wall shows its side walls: a corner look.
    half_width = cam.half_view(z_back) * float(rng.uniform(0.72, 0.92))
    return cam, RoomShape(half_width, z_back, float(rng.uniform(2.4, 2.8)))
