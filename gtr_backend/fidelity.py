"""How faithfully a result reproduces the views it was made from: the score the add-on shows beside every
result, `gtr reconstruct --json` prints and the evaluation's "mask IoU" and "input PSNR" columns report.

- mask IoU, per input view: the mesh's coverage (at 1/2) against the view's mask, at the view's resolution;
  the score keeps the worst view (a part missing in one view is a part missing).
- input PSNR: the finished mesh (its texture or vertex colours) rendered from the input cameras against the
  input views over white, over the pixels the masks cover fully (dB; None when no pixel is fully inside).
- The texture is read through its mipmaps (`render_mesh(mipmaps=True)`), as a camera's pixel integrates its
  area: a texture finer than a view's pixels then scores as sharp, not as aliased.
- held out: the same two scores on views that were kept out of the fit and the texture (a capture's held-out
  views): what the result looks like from where it was not made to match, which the first two overstate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .mesh import Mesh
from .metrics import mask_iou, psnr
from .render import render_mesh
from .render.raster import Rasterizer
from .views import ViewSet


@dataclass(frozen=True)
class Fidelity:
    mask_iou: float  # the worst input view's
    mask_iou_per_view: list[float]
    psnr: float | None  # dB, inside the masks
    held_out_views: int = 0  # how many views the held-out scores come from (0: none were held out)
    held_out_mask_iou: float | None = None  # the worst held-out view's
    held_out_psnr: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_view_psnr(mesh: Mesh, inputs: ViewSet, rasterizer: Rasterizer) -> float | None:
    """PSNR (dB) of the coloured mesh rendered from the input cameras against the input views, over the pixels
    the input masks cover fully (None: no such pixel)."""
    return fidelity(mesh, inputs, rasterizer).psnr


def fidelity(mesh: Mesh, views: ViewSet, rasterizer: Rasterizer, held_out: ViewSet | None = None) -> Fidelity:
    """The score of a coloured mesh (world frame) against the views it was made from (any resolution), from
    one render of it from the views' cameras, and against `held_out` views if given."""
    score = _scores(mesh, views, rasterizer)
    if held_out is None:
        return score
    other = _scores(mesh, held_out, rasterizer)
    return Fidelity(score.mask_iou, score.mask_iou_per_view, score.psnr, held_out.num_views, other.mask_iou, other.psnr)


def _scores(mesh: Mesh, views: ViewSet, rasterizer: Rasterizer) -> Fidelity:
    render = render_mesh(
        mesh.to(views.device), views.intrinsics, views.c2w, views.height, views.width, rasterizer, mipmaps=True
    )
    per_view = [round(float(v), 4) for v in mask_iou(render.fragments.mask, views.foreground())]
    inside = views.mask[:, 0] > 0.99
    score = None
    if bool(inside.any()):
        predicted, target = render.rgb.permute(0, 2, 3, 1)[inside], views.on_white().permute(0, 2, 3, 1)[inside]
        score = round(float(psnr(predicted[None], target[None])[0]), 3)  # identical: 100 dB
    return Fidelity(min(per_view, default=0.0), per_view, score)
