"""Clean surfaces: flat faces stay flat, edges stay sharp, and what no view sees becomes a calm membrane.

Two steps on the final mesh (world frame; topology kept, only vertices move):

    unseen fill     vertices that no input view sees (hidden by the surface itself, or facing away from every
                    camera: the underside of an object seen from above) carry no evidence but the network's
                    guess. They move towards the harmonic membrane spanned by the seen ones (every unseen
                    vertex at the mean of its neighbours), by `membrane` (0: the network's shape stays, 1: the
                    membrane): a guess from a network that got the seen part wrong becomes a smooth, taut
                    surface instead of a blob or a keel, while a network that matches the views keeps its own
    normal filter   feature-preserving smoothing (bilateral filtering of face normals, then vertices moved to
                    agree with them): wobbles and terraces whose normals differ by less than about `sharpness`
                    radians are flattened, creases sharper than that are kept
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..components import connected_components
from ..render.mesh_render import seen_surface
from ..render.raster import Rasterizer, TorchRasterizer, clip_to_pixels, sample_images
from ..views.viewset import ViewSet
from .mesh import Mesh


@dataclass(frozen=True)
class CleanOptions:
    min_seen: float = 0.1  # a vertex counts as seen when some view faces it at least this squarely (cosine)
    membrane: float = 1.0  # how far unseen vertices move to the membrane (see `membrane_share`)
    fill_iterations: int = 300  # conjugate-gradient steps of the membrane solve
    sharpness: float = 0.35  # normal difference (unit vectors) at which the filter stops averaging
    normal_iterations: int = 8
    vertex_iterations: int = 10


def membrane_share(network_error: float, trusted: float = 0.04, distrusted: float = 0.14) -> float:
    """How far unseen surface moves to the membrane, from how far (world units) the network's own shape stood
    from what the views show where they see it (the carving's `snap`): none at `trusted` or less, all at
    `distrusted` or more, linear between."""
    return min(1.0, max(0.0, (network_error - trusted) / (distrusted - trusted)))


def vertex_visibility(mesh: Mesh, views: ViewSet, rasterizer: Rasterizer | None = None) -> Tensor:
    """(V,) for every vertex, how squarely the best input view sees it: the cosine between its normal and the
    direction to the camera, over the views where it is not hidden (depth test against the mesh itself);
    0 where no view sees it."""
    rasterizer = rasterizer or TorchRasterizer()
    seen = seen_surface(mesh, views.intrinsics, views.c2w, views.height, views.width, rasterizer)
    clip = seen.clip  # (N, V, 4)
    pixels = clip_to_pixels(clip, views.height, views.width)
    front = sample_images(seen.depth[:, None].nan_to_num(posinf=1e6), pixels, "nearest", "border")[..., 0]
    # Allow two pixels' worth of depth (a vertex is on the surface it is compared with).
    focal = views.intrinsics[:, None, :2].mean(-1)
    visible = clip[..., 3] <= front + 2.0 * clip[..., 3] / focal
    inside = (pixels >= 0).all(-1) & (pixels[..., 0] <= views.width) & (pixels[..., 1] <= views.height)
    to_camera = F.normalize(views.c2w[:, None, :3, 3] - mesh.vertices[None].float(), dim=-1)
    facing = (mesh.vertex_normals()[None].float() * to_camera).sum(-1)
    return (facing * (visible & inside).float()).clamp_min(0).max(dim=0).values


def _neighbours(faces: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """Directed edges (E, 2) of the mesh (each undirected edge both ways, duplicates kept once) and the
    number of neighbours of each vertex (V,)."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.unique(torch.cat([edges, edges.flip(1)]), dim=0)
    degree = torch.zeros(count, device=faces.device).index_add_(
        0, edges[:, 0], torch.ones(len(edges), device=faces.device)
    )
    return edges, degree


def fill_unseen(vertices: Tensor, faces: Tensor, free: Tensor, iterations: int = 300) -> Tensor:
    """Move the `free` (V,) bool vertices to the harmonic membrane spanned by the others (uniform graph
    Laplacian zero at every free vertex), by conjugate gradients; (V, 3) out."""
    edges, degree = _neighbours(faces, len(vertices))
    free = free & _anchored(free, edges)
    if not bool(free.any()):
        return vertices
    index = torch.full((len(vertices),), -1, dtype=torch.long, device=vertices.device)
    index[free] = torch.arange(int(free.sum()), device=vertices.device)
    inner = free[edges[:, 0]] & free[edges[:, 1]]
    boundary = free[edges[:, 0]] & ~free[edges[:, 1]]
    # A x = b for the free vertices: degree * x_i - sum of free neighbours = sum of fixed neighbours.
    b = torch.zeros((int(free.sum()), 3), dtype=vertices.dtype, device=vertices.device)
    b.index_add_(0, index[edges[boundary, 0]], vertices[edges[boundary, 1]])
    rows, cols = index[edges[inner, 0]], index[edges[inner, 1]]
    diagonal = degree[free].to(vertices.dtype)[:, None]

    def apply(x: Tensor) -> Tensor:
        return diagonal * x - torch.zeros_like(x).index_add_(0, rows, x[cols])

    x = vertices[free].clone()
    r = b - apply(x)
    p = r.clone()
    rs = (r * r).sum(0)
    for _ in range(iterations):
        ap = apply(p)
        alpha = rs / (p * ap).sum(0).clamp_min(1e-20)
        x = x + alpha * p
        r = r - alpha * ap
        new = (r * r).sum(0)
        if float(new.max()) < 1e-12:
            break
        p = r + (new / rs.clamp_min(1e-20)) * p
        rs = new
    out = vertices.clone()
    out[free] = x
    return out


def _anchored(free: Tensor, edges: Tensor) -> Tensor:
    """(V,) bool: the free vertices whose connected region of free vertices touches a fixed vertex (a region
    with none, such as a part no view sees at all, has no membrane to take: it stays as it is)."""
    inner = free[edges[:, 0]] & free[edges[:, 1]]
    labels = torch.from_numpy(connected_components(len(free), edges[inner].cpu().numpy())).to(free.device)
    touching = torch.zeros(int(labels.max()) + 1, dtype=torch.bool, device=free.device)
    touching[labels[edges[free[edges[:, 0]] & ~free[edges[:, 1]], 0]]] = True
    return touching[labels]


def shared_edges(faces: Tensor) -> tuple[Tensor, Tensor]:
    """Pairs of faces (F, 3) that share an edge, each pair once: (P, 2) face indices and (P, 2) the vertices of
    the edge they share (the smaller first)."""
    count = len(faces)
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    owner = torch.arange(count, device=faces.device).repeat(3)
    key = edges[:, 0] * (int(faces.max()) + 1) + edges[:, 1] if count else owner
    order = torch.argsort(key)
    key, owner, edges = key[order], owner[order], edges[order]
    same = key[1:] == key[:-1]
    return torch.stack([owner[:-1][same], owner[1:][same]], dim=1), edges[:-1][same]


def face_neighbours(faces: Tensor) -> Tensor:
    """(P, 2) pairs of faces that share an edge (both orders)."""
    pairs = shared_edges(faces)[0]
    return torch.cat([pairs, pairs.flip(1)])


def filter_normals(vertices: Tensor, faces: Tensor, options: CleanOptions = CleanOptions()) -> Tensor:
    """Feature-preserving smoothing (module docstring): (V, 3) vertices -> (V, 3)."""
    if len(faces) == 0:
        return vertices
    pairs = face_neighbours(faces)
    v = vertices.clone()
    for _ in range(options.vertex_iterations if options.normal_iterations else 0):
        a, b, c = (v[faces[:, k]] for k in range(3))
        raw = torch.linalg.cross(b - a, c - a)
        area = raw.norm(dim=-1, keepdim=True)
        normals = raw / area.clamp_min(1e-20)
        filtered = normals
        for _ in range(options.normal_iterations):
            difference = (filtered[pairs[:, 0]] - filtered[pairs[:, 1]]).square().sum(-1, keepdim=True)
            weight = area[pairs[:, 1]] * torch.exp(-difference / options.sharpness**2)
            total = (area * filtered).index_add(0, pairs[:, 0], weight * filtered[pairs[:, 1]])
            filtered = F.normalize(total, dim=-1)
        centres = (a + b + c) / 3
        # Each vertex moves to where the planes of its faces (with their filtered normals) agree.
        move = torch.zeros_like(v)
        count = torch.zeros(len(v), 1, device=v.device, dtype=v.dtype)
        for k in range(3):
            offset = filtered * ((centres - v[faces[:, k]]) * filtered).sum(-1, keepdim=True)
            move.index_add_(0, faces[:, k], offset)
            count.index_add_(0, faces[:, k], torch.ones_like(offset[:, :1]))
        v = v + move / count.clamp_min(1)
    return v


def clean_surface(
    mesh: Mesh, views: ViewSet, options: CleanOptions = CleanOptions(), rasterizer: Rasterizer | None = None
) -> Mesh:
    """The unseen fill, then the normal filter (module docstring)."""
    vertices = mesh.vertices.detach().float()
    unseen = vertex_visibility(mesh, views, rasterizer) < options.min_seen
    if options.membrane > 0:
        membrane = fill_unseen(vertices, mesh.faces, unseen, options.fill_iterations)
        vertices = vertices + options.membrane * (membrane - vertices)
    vertices = filter_normals(vertices, mesh.faces, options)
    return Mesh(vertices, mesh.faces)
