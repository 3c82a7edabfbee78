"""Each face textured from the view that sees it best, levelled across seams (`refine.labelling`)."""

import torch
import trimesh

from gtr_backend.export import unwrap
from gtr_backend.fidelity import fidelity
from gtr_backend.mesh import Mesh
from gtr_backend.mesh.clean import shared_edges
from gtr_backend.reconstruction import bake
from gtr_backend.refine.labelling import LabelOptions, choose_views
from gtr_backend.refine.projection import ProjectionOptions, ViewColors
from gtr_backend.render import TorchRasterizer
from gtr_backend.views import ViewSet
from gtr_backend.views.cameras import intrinsics_from_fov, orbit_poses
from gtr_lab.synthetic.objects import ProceduralObject, orbit_render, render_object

BEST = ProjectionOptions(best_view=True)


def _sphere(radius: float = 0.5, subdivisions: int = 4) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces))


def _stripes(points: torch.Tensor) -> torch.Tensor:
    """Fine yellow and blue stripes across x, about 8 px wide in the near view below."""
    on = (torch.sin(points[:, 0] * 40) > 0).float()[:, None]
    return on * torch.tensor([0.9, 0.8, 0.2]) + (1 - on) * torch.tensor([0.1, 0.2, 0.5])


def test_the_close_view_textures_what_it_sees_and_reproduces_itself_sharper():
    """Two views of a striped ball from nearly the same side, one close (1.4) and one far (4.0): a blend mixes the
    far view's blurred stripes into the close one's; with one view per face the close view paints what it
    sees. Measured on the CPU: from the close camera 26.3 dB blended, 29.1 dB with one view per face."""
    ball = ProceduralObject(_sphere(0.5, 5), _stripes, "striped ball")
    c2w = torch.cat([orbit_poses([0.0], 10.0, 1.4), orbit_poses([25.0], 10.0, 4.0)]).float()
    views = render_object(ball, intrinsics_from_fov(40.0, 192, 192).float().expand(2, 4), c2w, 192, 192)
    mesh = unwrap(_sphere(0.5, 4), 512)
    scores = {}
    for how in ("blend", "best"):  # the `texture_views` option
        textured = bake(mesh, lambda p: torch.full_like(p, 0.5), views, 512, TorchRasterizer(), texture_views=how)
        scores[how] = fidelity(textured, views.select([0]), TorchRasterizer()).psnr
        if how == "best":  # the faces the close view sees squarely are its own
            colours = ViewColors(mesh, views, options=BEST)
            toward = torch.nn.functional.normalize(c2w[0, :3, 3], dim=0)
            facing = torch.nn.functional.normalize(colours.mesh.face_normals(), dim=-1) @ toward
            front = torch.nonzero(facing > 0.9).squeeze(1)
            assert (colours.labels.labels[front] == 0).float().mean() > 0.95
    print(f"from the close view: blended {scores['blend']:.2f} dB, one view per face {scores['best']:.2f} dB")
    assert scores["best"] > scores["blend"] + 1.5


def _pattern(points: torch.Tensor) -> torch.Tensor:
    return 0.5 + 0.3 * torch.sin(points * 6)


def test_levelling_evens_out_views_exposed_differently():
    """Four views of a ball, one brighter by 0.08 and one 10 % darker (as photos exposed differently): where
    neighbouring faces take different views, their colours at the seam jump; levelled, they meet (and the
    colours stay close to the truth)."""
    views = orbit_render(ProceduralObject(_sphere(0.5, 5), _pattern, "ball"), size=128)
    rgb = views.rgb.clone()
    rgb[1] = (rgb[1] + 0.08).clamp(0, 1)
    rgb[3] = rgb[3] * 0.9
    views = ViewSet.from_tensors(rgb, views.mask, views.intrinsics, views.c2w)
    mesh = _sphere(0.5, 4)
    pairs, edges = shared_edges(mesh.faces)
    jumps, errors = {}, {}
    for level in (False, True):
        colours = ViewColors(mesh, views, options=BEST)
        colours.__dict__["labels"] = choose_views(colours, mesh, LabelOptions(level=level))
        labels = colours.labels.labels
        seam = (labels[pairs[:, 0]] >= 0) & (labels[pairs[:, 1]] >= 0) & (labels[pairs[:, 0]] != labels[pairs[:, 1]])
        assert int(seam.sum()) > 50
        middle = (mesh.vertices[edges[seam, 0]] + mesh.vertices[edges[seam, 1]]) / 2
        normal = torch.nn.functional.normalize(middle, dim=-1)
        one = colours.project(middle, normal, pairs[seam, 0]).rgb  # each side's colour at the seam
        other = colours.project(middle, normal, pairs[seam, 1]).rgb
        jumps[level] = float((one - other).abs().mean())
        errors[level] = float(((one + other) / 2 - _pattern(middle)).abs().mean())
    print(f"seam jump {jumps[False]:.4f} -> {jumps[True]:.4f}, error {errors[False]:.4f} -> {errors[True]:.4f}")
    assert jumps[False] > 0.03 and jumps[True] < jumps[False] / 5
    assert errors[True] <= errors[False]


def test_a_view_the_others_contradict_is_never_chosen():
    """The view straight in front of a ball shows magenta where two views either side show grey (something the
    mesh lacks stood in front of it): it sees the front best, but the faces there take a grey view."""
    ball = _sphere()
    views = orbit_render(
        ProceduralObject(ball, lambda p: torch.full_like(p, 0.5), "ball"), [-30.0, 0.0, 30.0], 0.0, size=96
    )
    rgb = views.rgb.clone()
    rgb[1] = torch.tensor([1.0, 0.0, 1.0])[:, None, None]
    views = ViewSet.from_tensors(rgb, views.mask, views.intrinsics, views.c2w)
    colours = ViewColors(ball, views, options=BEST)
    toward = torch.nn.functional.normalize(views.c2w[1, :3, 3], dim=0)
    front = torch.nonzero(torch.nn.functional.normalize(ball.face_normals(), dim=-1) @ toward > 0.97).squeeze(1)
    labels = colours.labels.labels[front]
    assert len(front) > 5 and (labels >= 0).all() and (labels != 1).all()
    centres = ball.vertices[ball.faces[front]].mean(1)
    seen = colours.project(centres, torch.nn.functional.normalize(centres, dim=-1), front)
    assert (seen.rgb - 0.5).abs().max() < 0.05
