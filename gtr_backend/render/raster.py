"""Triangle rasterization behind one interface, with a PyTorch back end (any device) and nvdiffrast (CUDA).

Cameras: OpenCV intrinsics (fx, fy, cx, cy) in pixels with pixel centres at i + 0.5, and camera-to-world
poses, as everywhere in this package. `project` turns world vertices into clip coordinates (N, V, 4) whose
NDC x, y map pixel coordinates linearly onto [-1, 1] (row 0 of the image is NDC y = -1, as nvdiffrast stores
it) and whose w is the camera-space depth z; NDC depth maps [near, far] onto [-1, 1].

`Rasterizer.rasterize` gives `Fragments`: per pixel the front-most triangle (-1 where there is none) and its
perspective-correct barycentrics. `interpolate` blends vertex attributes with them (differentiably, in the
attributes and, through the barycentrics, in the vertex positions), and `antialias` smooths silhouette edges
analytically, which is also how a loss on the rendered coverage (a mask loss) reaches the vertex positions.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import GTRError

RasterBackend = Literal["auto", "torch", "nvdiffrast"]
NEAR, FAR = 0.05, 100.0


def project(
    vertices: Tensor, intrinsics: Tensor, c2w: Tensor, height: int, width: int, near: float = NEAR, far: float = FAR
) -> Tensor:
    """World vertices (V, 3) seen by N cameras -> clip coordinates (N, V, 4) (see the module docstring)."""
    w2c = torch.linalg.inv(c2w.to(vertices.dtype))
    cam = torch.einsum("nab,vb->nva", w2c[:, :3, :3], vertices) + w2c[:, None, :3, 3]  # (N, V, 3)
    x, y, z = cam.unbind(-1)
    fx, fy, cx, cy = (intrinsics.to(vertices.dtype)[:, i, None] for i in range(4))
    clip_x = (2 * fx * x + (2 * cx - width) * z) / width
    clip_y = (2 * fy * y + (2 * cy - height) * z) / height
    clip_z = (z * (far + near) - 2 * far * near) / (far - near)
    return torch.stack([clip_x, clip_y, clip_z, z], dim=-1)


def clip_to_pixels(clip: Tensor, height: int, width: int) -> Tensor:
    """Clip coordinates (..., 4) -> pixel coordinates (..., 2), pixel centres at i + 0.5 (inverse of `project`)."""
    w = torch.where(clip[..., 3].abs() < 1e-9, torch.full_like(clip[..., 3], 1e-9), clip[..., 3])
    return torch.stack([(clip[..., 0] / w + 1) * (width / 2), (clip[..., 1] / w + 1) * (height / 2)], dim=-1)


def sample_images(images: Tensor, pixels: Tensor, mode: str = "bilinear", padding_mode: str = "zeros") -> Tensor:
    """images (N, C, H, W) read at pixel coordinates (N, P, 2) (pixel centres at i + 0.5) -> (N, P, C)."""
    height, width = images.shape[-2:]
    grid = torch.stack([pixels[..., 0] / width * 2 - 1, pixels[..., 1] / height * 2 - 1], dim=-1)[:, :, None]
    out = F.grid_sample(images, grid.to(images.dtype), mode=mode, padding_mode=padding_mode, align_corners=False)
    return out[..., 0].transpose(1, 2)


def uv_clip(uv: Tensor) -> Tensor:
    """UVs (V, 2) in [0, 1] (v up) -> clip coordinates (1, V, 4) that rasterize the UV layout itself:
    texel row 0 is v = 1, so the result reads as an image of the texture (row 0 at the top)."""
    x = uv[:, 0] * 2 - 1
    y = (1 - uv[:, 1]) * 2 - 1
    return torch.stack([x, y, torch.zeros_like(x), torch.ones_like(x)], dim=-1)[None]


@dataclass
class Fragments:
    """triangle_id (N, H, W) long, -1 = background; barycentrics (N, H, W, 3), perspective-correct."""

    triangle_id: Tensor
    barycentrics: Tensor
    raw: Any = None  # the back end's own output, for its interpolate / antialias

    @property
    def mask(self) -> Tensor:
        """(N, H, W) bool: pixels covered by a triangle."""
        return self.triangle_id >= 0


class Rasterizer:
    name = "base"

    def rasterize(self, clip: Tensor, faces: Tensor, height: int, width: int) -> Fragments:
        raise NotImplementedError

    def interpolate(self, attributes: Tensor, fragments: Fragments, faces: Tensor) -> Tensor:
        """attributes (V, C) or (N, V, C) -> (N, H, W, C), zero on background pixels."""
        covered = torch.nonzero(fragments.mask.reshape(-1)).squeeze(1)  # only covered pixels are computed
        n, height, width = fragments.triangle_id.shape
        corners = faces[fragments.triangle_id.reshape(-1)[covered]]  # (P, 3)
        if attributes.dim() == 2:
            values = attributes[corners]  # (P, 3, C)
        else:
            values = attributes[(covered // (height * width))[:, None], corners]
        inside = (fragments.barycentrics.reshape(-1, 3)[covered, :, None] * values).sum(dim=1)  # (P, C)
        out = inside.new_zeros((n * height * width, attributes.shape[-1])).index_put((covered,), inside)
        return out.reshape(n, height, width, -1)

    def antialias(self, image: Tensor, fragments: Fragments, clip: Tensor, faces: Tensor) -> Tensor:
        """image (N, H, W, C) -> the same with anti-aliased silhouettes (identity in this base class)."""
        return image


class TorchRasterizer(Rasterizer):
    """A z-buffer rasterizer in plain PyTorch: every triangle is expanded to the pixel centres inside its
    screen bounding box, chunked so that at most `max_pairs` (triangle, pixel) candidates exist at once.
    Triangles with a vertex behind the near plane are skipped (objects are expected in front of the camera).
    """

    name = "torch"

    def __init__(self, max_pairs: int = 1 << 23) -> None:
        self.max_pairs = max_pairs

    def rasterize(self, clip: Tensor, faces: Tensor, height: int, width: int) -> Fragments:
        """All views at once: each (view, face) pair is a triangle of its own, drawn into its view's image."""
        n, count = clip.shape[0], faces.shape[0]
        device = clip.device
        w = clip[..., 3]
        px, py = clip_to_pixels(clip, height, width).unbind(-1)  # (N, V)
        tri_x, tri_y, tri_w = (t[:, faces].reshape(n * count, 3) for t in (px, py, w))  # (N F, 3)
        in_front = (tri_w > NEAR).all(dim=1)
        x0 = torch.ceil(tri_x.min(dim=1).values - 0.5).clamp(0, width).long()
        x1 = torch.floor(tri_x.max(dim=1).values - 0.5).clamp(-1, width - 1).long()
        y0 = torch.ceil(tri_y.min(dim=1).values - 0.5).clamp(0, height).long()
        y1 = torch.floor(tri_y.max(dim=1).values - 0.5).clamp(-1, height - 1).long()
        spans_x, spans_y = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
        count_px = torch.where(in_front, spans_x * spans_y, torch.zeros_like(spans_x))
        pixels = height * width
        best_inv_depth = torch.zeros(n * pixels, dtype=clip.dtype, device=device)  # 1/z, 0 = empty
        best_tri = torch.full((n * pixels,), -1, dtype=torch.long, device=device)  # view * F + face
        candidates = torch.nonzero(count_px).squeeze(1)
        ends = torch.cumsum(count_px[candidates], 0)
        start = 0
        while start < candidates.shape[0]:
            limit = (ends[start - 1] if start else 0) + self.max_pairs
            stop = max(start + 1, int(torch.searchsorted(ends, limit, right=True)))
            chunk = candidates[start:stop]
            start = stop
            per = count_px[chunk]
            tri = torch.repeat_interleave(chunk, per)
            offset = torch.arange(tri.shape[0], device=device) - torch.repeat_interleave(
                torch.cumsum(per, 0) - per, per
            )
            u = x0[tri] + offset % spans_x[tri]
            v = y0[tri] + offset // spans_x[tri]
            bary = _barycentrics(tri_x[tri], tri_y[tri], u.to(clip.dtype) + 0.5, v.to(clip.dtype) + 0.5)
            keep = torch.nonzero((bary >= 0).all(dim=1)).squeeze(1)
            tri, u, v, bary = tri[keep], u[keep], v[keep], bary[keep]
            inv_depth = (bary / tri_w[tri]).sum(dim=1)  # perspective: 1/z is linear in screen space
            pixel = (tri // count) * pixels + v * width + u
            before = best_inv_depth[pixel]
            best_inv_depth.scatter_reduce_(0, pixel, inv_depth, reduce="amax")
            winner = inv_depth >= best_inv_depth[pixel]
            best_tri[pixel[winner & (inv_depth > before)]] = -1  # a nearer surface replaces earlier chunks' pick
            best_tri.scatter_reduce_(0, pixel[winner], tri[winner], reduce="amax")  # ties: the higher id
        # Recompute the winners' barycentrics (differentiably in the vertex positions).
        covered = torch.nonzero(best_tri >= 0).squeeze(1)
        tri = best_tri[covered]
        rest = covered % pixels
        u = (rest % width).to(clip.dtype) + 0.5
        v = (rest // width).to(clip.dtype) + 0.5
        bary = _barycentrics(tri_x[tri], tri_y[tri], u, v)
        bary = bary / tri_w[tri]
        bary = bary / bary.sum(dim=1, keepdim=True)  # perspective-correct
        full = torch.zeros((n * pixels, 3), dtype=clip.dtype, device=device).index_put((covered,), bary)
        face = torch.where(best_tri >= 0, best_tri % max(count, 1), best_tri)
        return Fragments(face.reshape(n, height, width), full.reshape(n, height, width, 3))

    def antialias(self, image: Tensor, fragments: Fragments, clip: Tensor, faces: Tensor) -> Tensor:
        """Analytic anti-aliasing of the object's outline, differentiable in the vertex positions (the idea of
        nvdiffrast's antialias, for silhouettes against the background only).

        For every pair of neighbouring pixels (left/right, top/bottom) with one pixel covered and one not, the
        covered pixel's triangle is followed along the segment between the two pixel centres to the silhouette
        edge it crosses, at fraction s (0 at the covered centre). A silhouette edge is one with no triangle on
        its other side or a triangle facing the other way; an edge shared with another front-facing triangle is
        not the outline (the outline lies further on, in a triangle this pixel does not see), and a pixel pair
        whose triangle has no silhouette edge on the segment is left as it is. The outline sits at s, not at
        the half-way line the z-buffer assumed: if s > 1/2 the empty pixel takes (s - 1/2) of the covered
        colour, else the covered pixel takes (1/2 - s) of the empty one. s moves with the triangle's screen
        corners, so a loss on the coverage channel reaches the geometry; edges between two triangles of the
        object are left hard. image (N, H, W, C), clip (N, V, 4) -> (N, H, W, C)."""
        n, height, width, channels = image.shape
        if faces.shape[0] == 0:
            return image
        px, py = clip_to_pixels(clip, height, width).unbind(-1)  # (N, V)
        across = _across_edges(faces)
        outline = _silhouette_edges(faces, across, px.detach(), py.detach())  # (N, F, 3)
        flat = image.reshape(-1, channels)
        triangle = fragments.triangle_id.reshape(-1)
        # (pixel that changes, pixel whose colour it takes in, share taken) for every outline crossing
        takers: list[Tensor] = []
        givers: list[Tensor] = []
        shares: list[Tensor] = []
        index = torch.arange(n * height * width, device=image.device).reshape(n, height, width)
        for first, second in ((index[:, :, :-1], index[:, :, 1:]), (index[:, :-1, :], index[:, 1:, :])):
            first, second = first.reshape(-1), second.reshape(-1)
            first_covered, second_covered = triangle[first] >= 0, triangle[second] >= 0
            edge = first_covered != second_covered
            inside = torch.where(first_covered, first, second)[edge]
            outside = torch.where(first_covered, second, first)[edge]
            if inside.numel() == 0:
                continue
            view = inside // (height * width)

            def centre(pixel: Tensor) -> tuple[Tensor, Tensor]:
                rest = pixel % (height * width)
                return (rest % width).to(px.dtype) + 0.5, (rest // width).to(px.dtype) + 0.5

            s = _outline_crossing(
                triangle[inside], view, centre(inside), centre(outside), faces, px, py, across, outline
            )  # (P,); 1/2: leave the pair as it is
            takers += [outside, inside]
            givers += [inside, outside]
            shares += [(s - 0.5).clamp_min(0), (0.5 - s).clamp_min(0)]
        if not takers:
            return image
        taker, giver, share = torch.cat(takers), torch.cat(givers), torch.cat(shares)
        # A pixel with neighbours on two sides (a corner, a diagonal outline) would count its share twice: the
        # shares of one pixel are scaled to sum to at most 1/2, the most a pixel can change across one outline.
        total = torch.zeros(flat.shape[0], dtype=share.dtype, device=share.device).index_add(0, taker, share)
        share = share * (0.5 / total.clamp_min(0.5))[taker]
        delta = torch.zeros_like(flat).index_add(0, taker, share[:, None] * (flat[giver] - flat[taker]))
        return (flat + delta).reshape(n, height, width, channels)


def _across_edges(faces: Tensor) -> Tensor:
    """(F, 3) long: the face on the other side of the edge opposite corner k of each face (-1: none)."""
    count = faces.shape[0]
    ends = [(faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]) for k in range(3)]
    keys = torch.cat([torch.minimum(a, b) * (int(faces.max()) + 1) + torch.maximum(a, b) for a, b in ends])
    order = torch.argsort(keys)
    ordered = keys[order]
    pair = torch.nonzero(ordered[1:] == ordered[:-1]).squeeze(1)
    across = torch.full_like(keys, -1)
    across[order[pair]] = order[pair + 1] % count
    across[order[pair + 1]] = order[pair] % count
    return across.reshape(3, count).T


def _silhouette_edges(faces: Tensor, across: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """(N, F, 3) bool: whether the edge opposite corner k of face f is on the outline in view n, i.e. no other
    face shares it or the face across it faces the other way on screen (px, py: (N, V) pixel coordinates)."""
    tx, ty = px[:, faces], py[:, faces]  # (N, F, 3)
    area = (tx[..., 1] - tx[..., 0]) * (ty[..., 2] - ty[..., 0]) - (tx[..., 2] - tx[..., 0]) * (ty[..., 1] - ty[..., 0])
    side = area > 0  # (N, F)
    other = side[:, across.clamp_min(0)]  # (N, F, 3)
    return (across < 0)[None] | (other != side[..., None])


def _outline_crossing(
    triangle: Tensor,
    view: Tensor,
    a: tuple[Tensor, Tensor],
    b: tuple[Tensor, Tensor],
    faces: Tensor,
    px: Tensor,
    py: Tensor,
    across: Tensor,
    outline: Tensor,
    hops: int = 4,
) -> Tensor:
    """(P,) fraction s in [0, 1] along the segment from pixel centre a (covered by `triangle`) to b (empty) at
    which the segment crosses the object's outline, or 1/2 where it is not found within `hops` triangles.

    The segment is walked from triangle to triangle across shared edges until it leaves through an outline
    edge, so small triangles (a pixel wide or less) are handled; s is differentiable in the outline triangle's
    screen corners."""
    s = torch.full(triangle.shape, 0.5, dtype=px.dtype, device=px.device)
    open_ = torch.ones_like(triangle, dtype=torch.bool)
    behind = torch.zeros_like(s)  # the fraction already walked
    for _ in range(hops):
        corners = faces[triangle]
        tx, ty = px[view[:, None], corners], py[view[:, None], corners]
        start, end = _barycentrics(tx, ty, *a), _barycentrics(tx, ty, *b)
        leaving = (end < 0) & (start > end)
        crossing = torch.where(leaving, start / (start - end).clamp_min(1e-12), torch.full_like(start, 2.0))
        crossing = torch.where(crossing >= behind[:, None] - 1e-6, crossing, torch.full_like(crossing, 2.0))
        exit_at, edge = crossing.min(dim=1)
        found = open_ & (exit_at <= 1)
        on_outline = found & outline[view, triangle, edge]
        s = torch.where(on_outline, exit_at.clamp(0, 1), s)
        following = across[triangle, edge]
        open_ = found & ~on_outline & (following >= 0)
        if not bool(open_.any()):
            break
        triangle = torch.where(open_, following, triangle)
        behind = torch.where(open_, exit_at.detach(), behind)
    return s


def _barycentrics(tx: Tensor, ty: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Screen-space barycentrics (P, 3) of points (x, y) in triangles with corners (tx, ty) (P, 3).
    Degenerate triangles give negative values, so they never cover a pixel."""
    x0, x1, x2 = tx.unbind(1)
    y0, y1, y2 = ty.unbind(1)
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    safe = torch.where(area.abs() < 1e-12, torch.full_like(area, float("inf")), area)
    b1 = ((x - x0) * (y2 - y0) - (x2 - x0) * (y - y0)) / safe
    b2 = ((x1 - x0) * (y - y0) - (x - x0) * (y1 - y0)) / safe
    b0 = 1 - b1 - b2
    bary = torch.stack([b0, b1, b2], dim=1)
    return torch.where((area.abs() < 1e-12)[:, None], torch.full_like(bary, -1.0), bary)


class NvdiffrastRasterizer(Rasterizer):
    """nvdiffrast's CUDA rasterizer (optional; non-commercial licence). Its plugin must be loaded first
    (`nvdiffrast_build.ensure_plugin`, which `get_rasterizer` calls)."""

    name = "nvdiffrast"

    def __init__(self, device: torch.device | str = "cuda") -> None:
        import nvdiffrast.torch as dr

        self.dr = dr
        self.context = dr.RasterizeCudaContext(device=device)

    def rasterize(self, clip: Tensor, faces: Tensor, height: int, width: int) -> Fragments:
        faces32 = faces.int().contiguous()
        rast, _ = self.dr.rasterize(self.context, clip.float().contiguous(), faces32, resolution=[height, width])
        triangle_id = rast[..., 3].long() - 1
        u, v = rast[..., 0], rast[..., 1]
        barycentrics = torch.stack([u, v, 1 - u - v], dim=-1) * (triangle_id >= 0)[..., None]
        return Fragments(triangle_id, barycentrics, raw=rast)

    def interpolate(self, attributes: Tensor, fragments: Fragments, faces: Tensor) -> Tensor:
        out, _ = self.dr.interpolate(attributes.float().contiguous(), fragments.raw, faces.int().contiguous())
        return torch.as_tensor(out)

    def antialias(self, image: Tensor, fragments: Fragments, clip: Tensor, faces: Tensor) -> Tensor:
        return torch.as_tensor(
            self.dr.antialias(image.contiguous(), fragments.raw, clip.float().contiguous(), faces.int().contiguous())
        )


def nvdiffrast_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _nvdiffrast(device: str) -> NvdiffrastRasterizer:
    return NvdiffrastRasterizer(device)


_SAID: set[str] = set()  # the fallback lines this process has printed


def _fall_back(reason: str) -> TorchRasterizer:
    """The PyTorch rasterizer, with one line on stderr (once per reason) that says why."""
    if reason not in _SAID:
        _SAID.add(reason)
        print(f"gtr: {reason}; using the PyTorch rasterizer", file=sys.stderr, flush=True)
    return TorchRasterizer()


def get_rasterizer(
    device: torch.device | str, backend: RasterBackend = "auto", say: Callable[[str], None] | None = None
) -> Rasterizer:
    """nvdiffrast on CUDA when installed (or when asked for), else the PyTorch rasterizer.

    nvdiffrast's CUDA plugin is built on first use (`nvdiffrast_build`: it says so and how long it takes, and a
    lock left by an interrupted build is removed). With "auto", a plugin that cannot be built (no nvcc or
    ninja), whose build fails, or that another process is building right now gives the PyTorch rasterizer
    and one line on stderr that says why; "nvdiffrast" waits for another process's build and raises a
    `GTRError` instead of falling back. `say` receives the build's progress lines (default: stderr).
    """
    from .nvdiffrast_build import BuildBusyError, BuildError, ensure_plugin

    build = functools.partial(ensure_plugin, say=say) if say is not None else ensure_plugin
    device = torch.device(device)
    if backend == "nvdiffrast":
        if device.type != "cuda" or not nvdiffrast_available():
            raise GTRError("the nvdiffrast rasterizer needs a CUDA GPU and the optional diffrp-nvdiffrast package")
        build(wait=True)
        return _nvdiffrast(str(device))
    if backend == "auto" and device.type == "cuda" and nvdiffrast_available() and _FAILED[0] is None:
        try:
            build(wait=False)
            return _nvdiffrast(str(device))
        except BuildBusyError as error:  # another process builds it: the next call tries again
            return _fall_back(str(error))
        except BuildError as error:  # cannot be built here: not tried again in this process
            _FAILED[0] = str(error)
        except Exception as error:
            first = (str(error).splitlines() or [repr(error)])[0]
            _FAILED[0] = f"nvdiffrast's CUDA rasterizer could not be loaded ({first[:160]})"
    if backend == "auto" and device.type == "cuda" and _FAILED[0] is not None:
        return _fall_back(_FAILED[0])
    return TorchRasterizer()


_FAILED: list[str | None] = [None]  # why nvdiffrast cannot be used in this process, once that is known
