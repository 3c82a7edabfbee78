"""Job folders: where a request's results go (inside the jobs folder), written all or nothing, read back.

A finished job folder holds `contract.JOB_FILES`: mesh.glb and mesh.npz (vertices (V, 3) float32 in the backend
frame, faces (F, 3) int32, uv (V, 2) float32 or colors (V, 3)), texture.png (none with vertex colours),
state.safetensors (the refined colour field: "triplane" (3, C, R, R) and "field.*") and job.json
(`contract.JobManifest`), written last; where there are any, normal.png, material.png and emission.png, and
the levels of detail after the first (`contract.job_lod_file`); Bake to Active's folder holds target.npz
and, once baked, baked.png.
`write_job` is the one writer, `read_job` the one reader (the add-on reads job.json through
`contract.read_job_manifest` and mesh.npz itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract import (
    JOB_ARRAYS,
    JOB_EMISSION,
    JOB_LOD_FILES,
    JOB_MANIFEST,
    JOB_MATERIAL,
    JOB_MESH,
    JOB_NORMALS,
    JOB_STATE,
    JOB_TEXTURE,
    RECONSTRUCT_OPTIONS,
    JobManifest,
    job_lod_file,
    job_manifest_text,
    read_job_manifest,
)

MAX_LODS = int(RECONSTRUCT_OPTIONS["lods"].high or 1)


def confine(path: str, jobs_root: Path | None) -> Path:
    """A request's job folder, resolved, and confined to `jobs_root` (None: anywhere)."""
    from ..errors import GTRError

    folder = Path(path).expanduser().resolve()
    if jobs_root is not None:
        root = jobs_root.expanduser().resolve()
        if folder == root or root not in folder.parents:
            raise GTRError(f"the job folder {path} is not inside the jobs folder {root}; choose a folder there")
    if folder.exists() and not folder.is_dir():
        raise GTRError(f"the job folder {path} is a file, not a folder")
    return folder


def check_writable(job: Path) -> None:
    """Fail before any work when the job folder cannot be written (its parent is made if missing)."""
    import tempfile

    from ..errors import GTRError

    try:
        job.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=job.parent):
            pass
    except OSError as error:
        raise GTRError(f"cannot write the job folder {job}: {error.strerror or error}") from None


def write_job(
    job: Path, mesh: Any, colors: Any, info: JobManifest, mesh_files: bool = True, lods: Sequence[Any] = ()
) -> dict[str, str]:
    """Write a job folder all or nothing (`files.staged_folder`): everything goes into a new folder beside it,
    job.json (the manifest) last, and that folder then takes the job's place; everything else in the job
    folder (the mesh on a refine, views captured into it) is carried over. On any failure the job is left
    exactly as it was. `mesh` (backend frame, on the CPU) with its texture or vertex colours; `colors` the
    refined `ColorField`; `lods` its further levels of detail (written with the mesh files). Returns the paths
    written, by kind ("state", "texture", "material", "emission", "npz", "glb", "lod1_npz", ...)."""
    import shutil

    import numpy as np
    from safetensors.torch import save_file

    from ..export import write_mesh
    from ..files import staged_folder

    with staged_folder(job) as staging:
        rewritten = {JOB_TEXTURE, JOB_MATERIAL, JOB_EMISSION, JOB_STATE, JOB_MANIFEST}
        if mesh_files:
            rewritten |= {JOB_MESH, JOB_ARRAYS, JOB_NORMALS}  # (a refine of a vertex-coloured job rewrites them too)
            rewritten |= {job_lod_file(name, level) for name in JOB_LOD_FILES for level in range(1, MAX_LODS)}
        if job.is_dir():  # whatever else lives there (the captured views, the mesh on a refine) is carried over
            for entry in job.iterdir():
                if entry.name in rewritten or entry.is_symlink():  # a link is not the job's: never followed
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, staging / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, staging / entry.name, follow_symlinks=False)
        files = _write_textures(staging, job, mesh, 0)
        if mesh.normal_texture is not None:
            _write_image(staging / JOB_NORMALS, mesh.normal_texture)
        state = {"triplane": colors.triplane.detach().float().contiguous().cpu()}
        state.update(
            {f"field.{k}": v.detach().float().contiguous().cpu() for k, v in colors.field.state_dict().items()}
        )
        save_file(state, str(staging / JOB_STATE))
        if mesh_files:
            for level, part in enumerate([mesh, *lods]):
                colour = {"uv": part.uv} if part.uv is not None else {"colors": part.vertex_colors}
                np.savez(
                    staging / job_lod_file(JOB_ARRAYS, level),
                    vertices=part.vertices.numpy().astype(np.float32),
                    faces=part.faces.numpy().astype(np.int32),
                    **{k: v.detach().numpy().astype(np.float32) for k, v in colour.items()},
                )
                files[f"lod{level}_npz" if level else "npz"] = str(job / job_lod_file(JOB_ARRAYS, level))
                if level:
                    files.update(_write_textures(staging, job, part, level))
            write_mesh(mesh, staging / JOB_MESH, lods=lods)
            files["glb"] = str(job / JOB_MESH)
        (staging / JOB_MANIFEST).write_text(job_manifest_text(info))
    files["state"] = str(job / JOB_STATE)
    return files


def _write_image(path: Path, texture: Any) -> None:
    from PIL import Image

    from ..pixels import to_uint8

    Image.fromarray(to_uint8(texture).numpy()).save(path)


def _write_textures(staging: Path, job: Path, mesh: Any, level: int) -> dict[str, str]:
    """Level `level`'s base colour, material and emission textures (those it has) into `staging`; returns
    their paths in `job` by kind ("texture", "material", "emission"; prefixed "lod<k>_" after the first)."""
    written = {}
    for kind, name, texture in (
        ("texture", JOB_TEXTURE, mesh.texture),
        ("material", JOB_MATERIAL, mesh.material_texture),
        ("emission", JOB_EMISSION, mesh.emission_texture),
    ):
        if texture is not None:
            _write_image(staging / job_lod_file(name, level), texture)
            written[f"lod{level}_{kind}" if level else kind] = str(job / job_lod_file(name, level))
    return written


@dataclass
class JobFiles:
    """A finished job folder as read: its manifest, its mesh and its saved colour field's tensors."""

    info: dict[str, Any]  # job.json (`contract.JobManifest`; an older job may lack fields)
    mesh: Any  # Mesh, backend frame, with uv or vertex colours, on the device asked for
    state: dict[str, Any]  # "triplane" (3, C, R, R) and "field.*", on that device


def read_manifest(job: Path) -> dict[str, Any]:
    """A finished job's job.json; a `GTRError` when the folder is not a finished job."""
    from ..errors import GTRError

    info = read_job_manifest(job) if (job / JOB_STATE).is_file() else None
    if info is None:
        raise GTRError(f"{job}: not a finished reconstruction (job.json or state.safetensors is missing)")
    return info


def read_job(job: Path, device: Any) -> JobFiles:
    """A finished job's manifest, mesh and saved tensors, the tensors on `device`."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from ..mesh import Mesh

    info = read_manifest(job)
    with np.load(job / JOB_ARRAYS, allow_pickle=False) as data:
        arrays = {k: torch.from_numpy(data[k]).float() for k in data.files if k in ("uv", "colors")}
        mesh = Mesh(
            torch.from_numpy(data["vertices"]).float(),
            torch.from_numpy(data["faces"]).long(),
            uv=arrays.get("uv"),
            vertex_colors=arrays.get("colors"),
        ).to(device)
    return JobFiles(info, mesh, load_file(str(job / JOB_STATE), device=str(device)))


@dataclass
class FinishedJob:
    """What a finished job folder holds, loaded for more work (Refine Texture, Bake to Active)."""

    info: dict[str, Any]  # its manifest (job.json)
    device: Any  # torch.device it was made on
    originals: Any  # ViewSet: the views it was made from, at their own resolution
    views: Any  # ViewSet: the same at the model's resolution
    mesh: Any  # Mesh, backend frame, with uv or vertex colours
    field: Any  # the refined colour field's network (a copy of the model's)
    state: dict[str, Any]  # the saved tensors ("triplane", "field.*")
    held_out: Any = None  # ViewSet of its held-out views at the model's resolution, or None

    def sources(self) -> Any:
        """The views whose own colours go into a bake (None when the job was made without them)."""
        from ..reconstruction import texture_views

        return texture_views(self.originals) if self.info.get("texture_from_views", False) else None

    def views_meet(self) -> str:
        """How the views' colours met in its bake: "blend" or "best" (the `texture_views` option as its
        reconstruction made it definite; "blend" for jobs made before the option)."""
        from ..reconstruction import views_meet

        options = self.info.get("options") or {}
        exact = self.originals.depth is not None and bool(options.get("geometry_refine", True))
        return views_meet(str(options.get("texture_views", "blend")), exact)

    def texture_size(self, job: Path) -> int:
        from PIL import Image

        return int(Image.open(job / JOB_TEXTURE).size[0])


def read_bake_target(path: Path) -> Any:
    """The mesh Bake to Active bakes onto: vertices (V, 3) and uv (V, 2) of real numbers, faces (F, 3) of
    integers (vertex indices), from an .npz (no pickles); a `GTRError` saying what is wrong otherwise."""
    import numpy as np
    import torch

    from ..errors import GTRError
    from ..mesh import Mesh

    try:
        with np.load(path, allow_pickle=False) as data:
            vertices, faces, uv = (np.asarray(data[k]) for k in ("vertices", "faces", "uv"))
    except (OSError, ValueError, KeyError) as error:
        raise GTRError(f"{path.name}: not a mesh to bake onto ({error}); run Bake to Active again") from None
    v = vertices.shape[0] if vertices.ndim else -1  # a 0-d array has no length: a wrong shape
    if vertices.shape != (v, 3) or uv.shape != (v, 2) or faces.ndim != 2 or faces.shape[1:] != (3,) or not len(faces):
        raise GTRError(f"{path.name}: needs vertices (V, 3), uv (V, 2) and faces (F, 3); got other shapes")
    for name, array, allowed in (("faces", faces, "iu"), ("vertices", vertices, "iuf"), ("uv", uv, "iuf")):
        if array.dtype.kind not in allowed:
            numbers = "integers (vertex indices)" if allowed == "iu" else "real numbers"
            raise GTRError(f"{path.name}: its {name} are {array.dtype} values, not {numbers}; run Bake to Active again")
    if faces.min() < 0 or faces.max() >= v or not (np.isfinite(vertices).all() and np.isfinite(uv).all()):
        raise GTRError(f"{path.name}: faces name missing vertices or coordinates are not finite")
    return Mesh(
        torch.from_numpy(vertices.astype(np.float32)),
        torch.from_numpy(faces.astype(np.int64)),
        uv=torch.from_numpy(uv.astype(np.float32)),
    )
