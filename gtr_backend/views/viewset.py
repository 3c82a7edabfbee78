"""`ViewSet`: N posed RGBA views of one object, validated on construction.

Tensors (float32 on any device):
- rgb (N, 3, H, W) in [0, 1], straight (not premultiplied) colour;
- mask (N, 1, H, W) in [0, 1], the foreground (1) / background (0) coverage;
- intrinsics (N, 4) = (fx, fy, cx, cy) in pixels of these images, pixel centres at (i + 0.5);
- c2w (N, 4, 4): OpenCV camera-to-world poses in the world frame of `views.cameras`;
- depth (N, 1, H, W) or None: where known, the camera-space z (world units) of the surface each pixel sees, 0
  where unknown (a capture that rendered a depth pass gives it; photographs do not);
- material (N, 3, H, W) or None: the surface's PBR roughness and metallic in [0, 1] and where they are known
  (1; 0 where the source said nothing, e.g. a shader without a Principled BSDF), straight like rgb;
- emission (N, 3, H, W) or None: the emitted colour in [0, 1] (display values, like rgb), where a capture saw any.
`names` holds one label per view (its source file) so errors can say which view is at fault; `held_out` (N
booleans, or empty for none) marks views kept out of the fit and the texture, only to score the result on
views it was not made from (`split_held_out`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..contract import camera_spread_warning
from ..errors import ViewError
from .cameras import pose_problem


@dataclass(frozen=True)
class ViewSet:
    rgb: Tensor
    mask: Tensor
    intrinsics: Tensor
    c2w: Tensor
    names: tuple[str, ...]
    depth: Tensor | None = None
    held_out: tuple[bool, ...] = ()
    material: Tensor | None = None
    emission: Tensor | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "held_out", tuple(bool(h) for h in self.held_out))
        n = self.rgb.shape[0] if self.rgb.dim() == 4 else -1
        if n < 1 or self.rgb.shape[1] != 3:
            raise ViewError(f"a view set needs rgb of shape (N>=1, 3, H, W), got {tuple(self.rgb.shape)}")
        h, w = self.rgb.shape[2:]
        expected = {"mask": (n, 1, h, w), "intrinsics": (n, 4), "c2w": (n, 4, 4)}
        for field, shape in expected.items():
            got = tuple(getattr(self, field).shape)
            if got != shape:
                raise ViewError(f"view set: {field} has shape {got}, expected {shape} for {n} views of {w}x{h}")
        if len(self.names) != n:
            raise ViewError(f"view set: {len(self.names)} names for {n} views")
        if self.held_out and len(self.held_out) != n:
            raise ViewError(f"view set: {len(self.held_out)} held-out flags for {n} views")
        if self.held_out and all(self.held_out):
            raise ViewError("view set: every view is held out; at least one view must be used for the fit")
        if self.depth is not None:
            if tuple(self.depth.shape) != (n, 1, h, w):
                raise ViewError(f"view set: depth has shape {tuple(self.depth.shape)}, expected {(n, 1, h, w)}")
            if not torch.isfinite(self.depth).all() or float(self.depth.min()) < 0:
                raise ViewError("view set: depth must be finite and not negative (0 where unknown)")
        for field in ("material", "emission"):
            values = getattr(self, field)
            if values is None:
                continue
            if tuple(values.shape) != (n, 3, h, w):
                raise ViewError(f"view set: {field} has shape {tuple(values.shape)}, expected {(n, 3, h, w)}")
            if not torch.isfinite(values).all() or float(values.min()) < 0 or float(values.max()) > 1:
                raise ViewError(f"view set: {field} values must be finite and lie in [0, 1]")
        for i, name in enumerate(self.names):
            where = f"view {i} ({name})"
            for field in ("rgb", "mask", "intrinsics", "c2w"):
                if not torch.isfinite(getattr(self, field)[i]).all():
                    raise ViewError(f"{where}: its {field} contains NaN or Inf")
            for field in ("rgb", "mask"):
                values = getattr(self, field)[i]
                if values.min() < 0 or values.max() > 1:
                    raise ViewError(
                        f"{where}: {field} values must lie in [0, 1], found "
                        f"[{float(values.min()):.3g}, {float(values.max()):.3g}]"
                    )
            if float(self.mask[i].max()) < 0.5:
                raise ViewError(
                    f"{where}: the mask is empty, no object is visible; check the alpha channel or mask image"
                )
            fx, fy = float(self.intrinsics[i, 0]), float(self.intrinsics[i, 1])
            if fx <= 0 or fy <= 0:
                raise ViewError(f"{where}: focal lengths must be positive, got fx={fx}, fy={fy}")
            problem = pose_problem(self.c2w[i], self.intrinsics[i], w, h)
            if problem:
                raise ViewError(f"{where}: {problem}")

    @classmethod
    def from_tensors(
        cls,
        rgb: Tensor,
        mask: Tensor,
        intrinsics: Tensor,
        c2w: Tensor,
        names: Sequence[str] | None = None,
        depth: Tensor | None = None,
        held_out: Sequence[bool] = (),
        material: Tensor | None = None,
        emission: Tensor | None = None,
    ) -> ViewSet:
        """Build from tensors of any float dtype; they are stored as float32."""
        n = rgb.shape[0]
        return cls(
            rgb.float(),
            mask.float(),
            intrinsics.float(),
            c2w.float(),
            tuple(names) if names is not None else tuple(f"view_{i:03d}" for i in range(n)),
            None if depth is None else depth.float(),
            tuple(held_out),
            None if material is None else material.float(),
            None if emission is None else emission.float(),
        )

    @property
    def num_views(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[2])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[3])

    @property
    def device(self) -> torch.device:
        return self.rgb.device

    def camera_warning(self) -> str | None:
        """A sentence for the user when the cameras do not go around the object (all from nearly one direction,
        or all on one side of it), else None: `contract.camera_spread_warning`."""
        return camera_spread_warning(self.c2w.detach().cpu().double().tolist())

    def foreground(self) -> Tensor:
        """(N, H, W) bool: the pixels at least half covered by the object (the silhouettes, thresholded)."""
        return self.mask[:, 0] >= 0.5

    def on_white(self) -> Tensor:
        """(N, 3, H, W): the colour composited over a white background."""
        return self.rgb * self.mask + (1 - self.mask)

    def to(self, device: torch.device | str) -> ViewSet:
        return dataclasses.replace(
            self,
            rgb=self.rgb.to(device),
            mask=self.mask.to(device),
            intrinsics=self.intrinsics.to(device),
            c2w=self.c2w.to(device),
            depth=None if self.depth is None else self.depth.to(device),
            material=None if self.material is None else self.material.to(device),
            emission=None if self.emission is None else self.emission.to(device),
        )

    def select(self, indices: Sequence[int]) -> ViewSet:
        """The views at `indices`, in that order."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        chosen = idx.tolist()
        return ViewSet(
            self.rgb[idx],
            self.mask[idx],
            self.intrinsics[idx],
            self.c2w[idx],
            tuple(self.names[i] for i in chosen),
            None if self.depth is None else self.depth[idx.to(self.depth.device)],
            tuple(self.held_out[i] for i in chosen) if self.held_out else (),
            None if self.material is None else self.material[idx.to(self.material.device)],
            None if self.emission is None else self.emission[idx.to(self.emission.device)],
        )

    def checked_depth(self, reach: float = 3**0.5, tolerance: float = 0.01) -> tuple[ViewSet, list[str]]:
        """The views with every depth map that cannot be right dropped (set unknown), and a sentence for each:
        a map is dropped when more than `tolerance` of its known pixels lie outside the working volume (farther
        from the camera's distance to the origin than `reach`, as 1e30 or a wrong unit would) or outside the
        view's mask. The rest keep theirs; with none left, the views have no depth."""
        if self.depth is None:
            return self, []
        distance = self.c2w[:, :3, 3].norm(dim=-1)[:, None, None, None]
        known = self.depth > 0
        impossible = known & (((self.depth - distance).abs() > reach) | (self.mask < 0.5))
        count = known.flatten(1).sum(1).clamp_min(1)
        share = impossible.flatten(1).sum(1) / count
        bad = share > tolerance
        if not bool(bad.any()):
            return self, []
        notes = [
            f"view {i} ({self.names[i]}): {float(share[i]):.0%} of its depth map lies outside the object's working "
            "volume or its mask (a wrong unit, a corrupt file), so its depth was not used"
            for i in torch.nonzero(bad).squeeze(1).tolist()
        ]
        depth = torch.where(bad[:, None, None, None], torch.zeros_like(self.depth), self.depth)
        if bool(bad.all()):
            notes.append("no view's depth could be used: the shape comes from the views' images alone")
            return dataclasses.replace(self, depth=None), notes
        return dataclasses.replace(self, depth=depth), notes

    def split_held_out(self) -> tuple[ViewSet, ViewSet | None]:
        """(the views the result is made from, the held-out views or None), neither marked held out."""
        if not any(self.held_out):
            return dataclasses.replace(self, held_out=()), None
        bare = dataclasses.replace(self, held_out=())
        fit = [i for i, held in enumerate(self.held_out) if not held]
        return bare.select(fit), bare.select([i for i, held in enumerate(self.held_out) if held])

    def resized(self, size: int | tuple[int, int]) -> ViewSet:
        """Resample every view to `size` (square side, or (height, width)) with intrinsics scaled to match.

        Colour is resampled premultiplied by the mask, so no background colour bleeds into the object's rim.
        With pixel centres at (i + 0.5) the scaling is exact: (fx, cx) *= W'/W and (fy, cy) *= H'/H. Depth is
        averaged over the known pixels only (a pixel with none known stays unknown), never across an outline.
        """
        h2, w2 = (size, size) if isinstance(size, int) else size
        if (h2, w2) == (self.height, self.width):
            return self
        antialias = h2 < self.height or w2 < self.width

        def resample(x: Tensor) -> Tensor:
            return F.interpolate(x, size=(h2, w2), mode="bilinear", align_corners=False, antialias=antialias)

        mask = resample(self.mask).clamp(0, 1)
        premultiplied = resample(self.rgb * self.mask)
        rgb = torch.where(mask > 1e-4, premultiplied / mask.clamp_min(1e-4), torch.ones_like(premultiplied))
        scale = torch.tensor(
            [w2 / self.width, h2 / self.height, w2 / self.width, h2 / self.height], device=self.intrinsics.device
        )
        depth = None if self.depth is None else resample_depth(self.depth, (h2, w2))

        def straight(values: Tensor | None) -> Tensor | None:  # resampled like the colour, over the object only
            if values is None:
                return None
            averaged = resample(values * self.mask)
            return torch.where(mask > 1e-4, averaged / mask.clamp_min(1e-4), torch.zeros_like(averaged)).clamp(0, 1)

        return ViewSet(
            rgb.clamp(0, 1),
            mask,
            self.intrinsics * scale,
            self.c2w,
            self.names,
            depth,
            self.held_out,
            straight(self.material),
            straight(self.emission),
        )


def resample_depth(depth: Tensor, size: tuple[int, int]) -> Tensor:
    """Depth maps (N, 1, H, W) (0 = unknown) resampled to `size` (height, width): each new pixel averages the
    known depths under it, and is known only where every pixel under it was (no mix across an outline)."""
    if tuple(depth.shape[2:]) == tuple(size):
        return depth
    antialias = size[0] < depth.shape[2] or size[1] < depth.shape[3]

    def resample(x: Tensor) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)

    known = (depth > 0).float()
    total, count = resample(depth * known), resample(known)
    return torch.where(count > 0.999, total / count.clamp_min(1e-6), torch.zeros_like(total))
