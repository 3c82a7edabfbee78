"""What the Blender add-on and the backend agree on, in plain Python (no torch, no bpy): the protocol version,
the requests and their fields, the replies and theirs, the files of a job folder and its manifest, the
view-folder format (cameras.json: its one writer and its one reader) and image suffixes, and the working volume
(view radius, orbit defaults). The add-on imports this module from the bundled backend and keeps no copies.

`check_request(message)` validates one request before any work starts: the op is known, every field it needs
is there with the right type and range (text without NUL characters; an id, and a cancel's target, an integer
or a string), and no field is unknown; anything else is a `GTRError` whose message names the field. (The
server's docstring describes what each request does.)

Replies: each request's `result` carries the fields of its `*Reply` definition below (`REPLIES`), besides
`id`, `type` and `seconds`; the server checks every reply it sends against it (`check_reply`) and the add-on
every reply it reads, so a field is named once, here, for both.

`camera_spread_warning(poses)` says, in a sentence for the user, when a view set's cameras do not go around the
object (nearly one direction, or all on one side of it): the command line prints it and the add-on shows it.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from .errors import GTRError, ViewError
from .files import atomic_write, input_problem

PROTOCOL = 1

# Files of a finished job folder; the manifest is written last.
JOB_MESH = "mesh.glb"  # the textured mesh, backend frame (Y up)
JOB_ARRAYS = "mesh.npz"  # vertices (V, 3) float32 backend frame, faces (F, 3) int32, and uv (V, 2) float32 or, with
# the `vertex_colors` option, colors (V, 3) float32 in [0, 1]; no pickles
JOB_TEXTURE = "texture.png"  # the base-colour texture (8-bit RGB; none with vertex colours)
JOB_STATE = "state.safetensors"  # the refined colour field and triplane, for Refine Texture
JOB_MANIFEST = "job.json"  # the request's views and options
JOB_FILES = (JOB_MESH, JOB_ARRAYS, JOB_TEXTURE, JOB_STATE, JOB_MANIFEST)
JOB_NORMALS = "normal.png"  # with the `normal_map` option: the tangent-space normal map (8-bit RGB, same uv)
JOB_MATERIAL = "material.png"  # views that carry a material pass: glTF's metallicRoughness packing (8-bit RGB:
# R unused, G roughness, B metallic), same uv
JOB_EMISSION = "emission.png"  # views that carry an emission pass: the emitted colour (8-bit RGB), same uv
# Levels of detail after the first (the `lods` option): level k's mesh and textures are the files above with
# the prefix "lod<k>_" (lod1_mesh.npz, lod1_texture.png, ...); mesh.glb holds the whole chain.
JOB_LOD_FILES = (JOB_ARRAYS, JOB_TEXTURE, JOB_MATERIAL, JOB_EMISSION)


def job_lod_file(name: str, level: int) -> str:
    """The job file `name` of level of detail `level` (0: the result itself)."""
    return name if level == 0 else f"lod{level}_{name}"


# Bake to Active: the add-on writes the target mesh into a folder of its own, the backend the texture beside it.
BAKE_TARGET = "target.npz"  # vertices (V, 3) float32 in the job's backend frame, faces (F, 3) int32, uv (V, 2)
BAKE_TEXTURE = "baked.png"  # the job's colours on the target's UV layout (8-bit RGB, row 0 = v 1)

# View folders (docs/command-line.md, "View sets"): the project's camera file and its format id, and the image files the
# loaders read (what Import Views may offer).
CAMERAS_JSON = "cameras.json"
VIEWS_FORMAT = "gtr-views/1"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

# The backend's working volume (Y up): objects are scaled into the sphere of this radius around the origin,
# where the training objects live, and seen by cameras at ORBIT_DISTANCE with ORBIT_FOV_DEG.
VIEW_RADIUS = 0.8
ORBIT_ELEVATION_DEG = 20.0
ORBIT_FOV_DEG = 40.0
ORBIT_DISTANCE = 2.7  # at ORBIT_FOV_DEG the whole sphere of VIEW_RADIUS is in view with a margin
ORBIT_AZIMUTHS_DEG = (0.0, 90.0, 180.0, 270.0)
# The geometry and texture use at most this many views (beyond it, the best spread; views.selection).
MAX_FIT_VIEWS = 32

# The devices a request, the command line or the add-on may name, with a label and help for menus; "cuda:N"
# also picks the N-th of several NVIDIA GPUs.
DEVICES: dict[str, tuple[str, str]] = {
    "auto": ("Automatic", "The GPU when PyTorch sees one (NVIDIA's CUDA, then Apple's Metal), else the CPU"),
    "cuda": ("GPU (CUDA)", "An NVIDIA GPU through CUDA"),
    "mps": ("Apple GPU (Metal)", "An Apple Silicon GPU through Metal (MPS)"),
    "cpu": ("CPU", "The processor: slower, works everywhere"),
}


@dataclass(frozen=True)
class Option:
    """One reconstruction option, defined once: the command line (`gtr reconstruct`, `gtr eval`), the Python
    API (`ReconstructOptions`), the server's requests and the add-on's preferences all read it from here."""

    default: Any
    help: str
    low: float | None = None  # the smallest value allowed (numbers)
    high: float | None = None  # the largest
    choices: tuple[str, ...] = ()  # the values allowed (text)


RECONSTRUCT_OPTIONS: dict[str, Option] = {
    "mesh_resolution": Option(
        None, "marching-cubes grid points per side (none: 256 on a GPU, 128 on the CPU)", low=16, high=1024
    ),
    "geometry_refine": Option(
        True, "make the mesh agree with every input view: carve it to the masks, add what the network missed"
    ),
    "geometry_steps": Option(20, "steps of the surface fit to the views after carving (0 turns it off)", 0, 200),
    "texture_from_views": Option(True, "take texel colours from the input views where they see the surface"),
    "texture_views": Option(
        "auto",
        "how the views' colours meet where several see the surface: best (each face from the one view that sees it "
        "closest and most squarely, colours levelled across seams: the sharpest, where the shape is exact), blend (a "
        "mix weighted towards the views that see each point best: forgiving where the shape is not) or auto (best "
        "where the shape comes from the views' own depth, as in a capture; blend otherwise)",
        choices=("auto", "blend", "best"),
    ),
    "refine_steps": Option(20, "texture refinement steps (0 turns it off)", low=0, high=500),
    "texture_size": Option(1024, "texture atlas size in pixels", low=16, high=4096),
    "target_faces": Option(
        20000,
        "simplify to about this many faces before unwrapping (0 keeps all; with auto faces, at most)",
        0,
        10_000_000,
    ),
    "auto_faces": Option(
        False,
        "simplify as far as the shape allows: until the surface would move by more than a small fraction of the "
        "object's size (flat sides become a few large faces, detail keeps its faces); target faces caps it",
    ),
    "lods": Option(
        1, "levels of detail: each level after the first has about a quarter of the faces, with its own bake", 1, 4
    ),
    "uv": Option(
        "fast",
        "UV atlas: fast (projected charts, no overlapping texels) or xatlas (tightest packing, slower)",
        choices=("fast", "xatlas"),
    ),
    "normal_map": Option(False, "also bake the full-resolution surface's normals into a tangent-space normal map"),
    "vertex_colors": Option(False, "colour per vertex instead of a UV texture (no texture, no normal map)"),
}

_INT, _NUMBER, _TEXT, _FLAG = "an integer", "a number", "a string", "true or false"
_OBJECT, _NUMBERS = "an object", "a list of numbers"
_ID = "an integer or a string"  # what identifies a request: its `id`, a cancel's `target`


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return _FLAG
    if isinstance(value, int):
        return _INT
    if isinstance(value, float):
        return _NUMBER
    if isinstance(value, str):
        return _TEXT
    if isinstance(value, dict):
        return _OBJECT
    if isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return _NUMBERS
    return None


# field -> (expected kind, required, may be null, lowest allowed value)
Field = tuple[str, bool, bool, float | None]


def _request_field(option: Option) -> Field:
    """How a request's `options` object carries an option: its kind, never required, null only where the
    option's default is none, at least its lowest value (the add-on's 0 for "automatic" stays allowed)."""
    kind = _FLAG if isinstance(option.default, bool) else _TEXT if option.choices else _INT
    return (kind, False, option.default is None, None if option.default is None else option.low)


_OPTIONS: dict[str, Field] = {name: _request_field(option) for name, option in RECONSTRUCT_OPTIONS.items()}
_ORBIT: dict[str, Field] = {
    "azimuths": (_NUMBERS, False, True, None),
    "elevation": (_NUMBER, False, False, None),
    "fov": (_NUMBER, False, False, None),
    "distance": (_NUMBER, False, False, None),
}
_VIEWS: dict[str, Field] = {
    "path": (_TEXT, True, False, None),
    "orbit": (_OBJECT, False, True, None),
    "zero123pp": (_FLAG, False, False, None),
}
_COMMON: dict[str, Field] = {
    "op": (_TEXT, True, False, None),
    "protocol": (_INT, False, False, None),
}
REQUESTS: dict[str, dict[str, Field]] = {
    "hello": {},
    "ping": {},
    "shutdown": {},
    "cancel": {"target": (_ID, True, False, None)},
    "load": {"weights": (_TEXT, False, True, None), "device": (_TEXT, False, True, None)},
    "reconstruct": {
        "views": (_OBJECT, True, False, None),
        "job": (_TEXT, True, False, None),
        "weights": (_TEXT, False, True, None),
        "device": (_TEXT, False, True, None),
        "options": (_OBJECT, False, True, None),
    },
    "refine": {"job": (_TEXT, True, False, None), "steps": (_INT, False, False, 1)},
    "bake_to": {
        "job": (_TEXT, True, False, None),
        "folder": (_TEXT, True, False, None),
        "texture_size": (_INT, False, False, RECONSTRUCT_OPTIONS["texture_size"].low),
    },
    "unload": {},
    "cameras": {"views": (_OBJECT, True, False, None), "folder": (_TEXT, True, False, None)},
}
_NESTED = {"options": _OPTIONS, "views": _VIEWS, "orbit": _ORBIT}


def _check(values: dict[str, Any], fields: dict[str, Field], where: str) -> None:
    for name in values:
        if name not in fields:
            raise GTRError(f"{where}: unknown field {name!r} (known: {', '.join(sorted(fields)) or 'none'})")
    for name, (kind, required, nullable, lowest) in fields.items():
        if name not in values:
            if required:
                raise GTRError(f"{where}: the field {name!r} is missing")
            continue
        value = values[name]
        if value is None and nullable:
            continue
        found = _kind(value)
        if found != kind and not (kind == _NUMBER and found == _INT) and not (kind == _ID and found in (_INT, _TEXT)):
            raise GTRError(f"{where}: the field {name!r} must be {kind}, got {type(value).__name__} {value!r:.40}")
        numbers = value if isinstance(value, list) else [value] if found in (_INT, _NUMBER) else []
        if not all(math.isfinite(v) for v in numbers):
            raise GTRError(f"{where}: the field {name!r} must be finite, got {value!r:.40}")
        if isinstance(value, str) and "\0" in value:
            raise GTRError(f"{where}: the field {name!r} contains a NUL character; give it without one")
        if lowest is not None and value < lowest:
            raise GTRError(f"{where}: the field {name!r} must be at least {lowest:g}, got {value}")
        if name in _NESTED and isinstance(value, dict):
            _check(value, _NESTED[name], f"{where}, {name}")


def check_request(message: Any) -> dict[str, Any]:
    """The request, checked (see the module docstring); a `GTRError` naming what is wrong otherwise."""
    if not isinstance(message, dict):
        raise GTRError(f"a request must be a JSON object, got {type(message).__name__}")
    op = message.get("op")
    if not isinstance(op, str) or op not in REQUESTS:
        raise GTRError(f"unknown request {op!r}; known: {', '.join(sorted(REQUESTS))}")
    if "protocol" in message and message["protocol"] != PROTOCOL:
        raise GTRError(
            f"request {op!r} speaks protocol {message['protocol']!r}, this backend {PROTOCOL}: update the add-on "
            "or the backend so they match"
        )
    _check(message, {**_COMMON, "id": (_ID, False, True, None), **REQUESTS[op]}, f"request {op!r}")
    return message


# ---------------------------------------------------------------------------------------------------------------
# Replies: the fields of each request's `result` (besides `id`, `type` and `seconds`). Progress replies carry
# `stage` and `fraction` in [0, 1]; errors carry `message`, and `cancelled` or `retry_options` where they apply.


class FidelityFields(TypedDict):
    """`gtr_backend.fidelity.Fidelity` as it travels (a reply, job.json, the add-on's object properties)."""

    mask_iou: float  # the worst input view's: the mesh's coverage against its mask
    mask_iou_per_view: list[float]
    psnr: float | None  # dB, the result from the input cameras inside the masks
    held_out_views: int  # how many views were kept out of the fit (0: none)
    held_out_mask_iou: float | None
    held_out_psnr: float | None


# A finished result is checked against its inputs before it is called done (`fidelity_problem`): a result
# whose silhouette misses what a view saw, or whose colours are far from the views', is still written, but
# `gtr reconstruct` exits with EXIT_FAILS_INPUTS, the server says so among its warnings, and the add-on marks it.
EXIT_FAILS_INPUTS = 3
FAILING_MASK_IOU = 0.75  # a view whose mask and the result's silhouette overlap less than this was not matched
MATCHED_MASK_IOU = 0.9  # ... while the other views overlap at least this: that one view is the odd one out
FAILING_PSNR = 14.0  # dB inside the masks: colours this far from the views are not theirs


def fidelity_problem(fidelity: Mapping[str, Any], names: Sequence[str] = (), depth: bool = False) -> str | None:
    """One line saying how a result fails the views it was made from (`FidelityFields`), naming the views and
    the likely cause; None when it does not. `names`: the fitted views' names (else "view 1", ...); `depth`: the
    views carried depth maps (a bad one is then a likely cause)."""
    ious = [float(v) for v in fidelity.get("mask_iou_per_view") or []]

    def name(i: int) -> str:
        return names[i] if i < len(names) else f"view {i + 1}"

    failing = [i for i, v in enumerate(ious) if v < FAILING_MASK_IOU]
    if failing:
        shown = ", ".join(f"{name(i)} ({ious[i]:.2f})" for i in failing[:4]) + (" ..." if len(failing) > 4 else "")
        others = [v for i, v in enumerate(ious) if i not in failing]
        if others and min(others) >= MATCHED_MASK_IOU:
            what = "camera, mask or depth map" if depth else "camera or mask"
            cause = f"its {what} disagrees" if len(failing) == 1 else f"their {what}s disagree"
            cause = f"{cause} with the other views"
            return f"the result does not match {shown} (silhouette overlap): {cause}; check or remove them"
        return (
            f"the result does not match its views: silhouette overlap {shown}. Likely an object with no thickness "
            "(a plane or sheet: give it some, e.g. with a Solidify modifier) or cameras that do not fit the images"
        )
    held_out = fidelity.get("held_out_mask_iou")
    if held_out is not None and float(held_out) < FAILING_MASK_IOU:
        return (
            f"the result does not match the {fidelity.get('held_out_views')} view(s) kept out of the fit "
            f"(silhouette overlap {float(held_out):.2f}): its shape is wrong where the other views do not look; "
            "more views around the object help"
        )
    psnr = fidelity.get("psnr")
    if psnr is not None and float(psnr) < FAILING_PSNR:
        return (
            f"the result's colours do not match its views (PSNR {float(psnr):.1f} dB inside their masks): "
            "check that the images and their masks belong together"
        )
    return None


class HelloReply(TypedDict):
    protocol: int
    version: str  # gtr_backend's
    torch: str
    cuda: bool
    device: str  # what "auto" picks, for people: the GPU's name, "Apple GPU (MPS)" or "CPU"
    weights: str | None  # the bundled weights file, or None


class PingReply(TypedDict):
    busy: bool  # a request is running


class LoadReply(TypedDict):
    device: str
    loaded_model: bool  # False: it was loaded already
    warm_up: dict[str, Any] | None  # what the start-up warm-up measured (device, seconds per step, kernels)


class ReconstructReply(TypedDict):
    files: dict[str, str]  # kind ("glb", "npz", "texture", "material", "emission", "state", "lod1_npz", ...) -> path
    faces: int
    lod_faces: list[int]  # the faces of each further level of detail (LOD1, ...); [] for one level
    loaded_model: bool  # False: the model was still loaded from an earlier request
    timings: dict[str, float]  # seconds per stage
    psnr_before: float | None  # the texture refinement's input-view PSNR (dB), None without refinement
    psnr_after: float | None
    fidelity: FidelityFields
    options: dict[str, Any]  # every option of RECONSTRUCT_OPTIONS, as used
    weights_name: str
    warnings: list[str]  # sentences for the user (cameras that do not go around the object, ...)


class _RefineScore(TypedDict, total=False):  # (total=False, not NotRequired: the annotations are strings here)
    fidelity: FidelityFields  # when improved


class RefineReply(_RefineScore):
    files: dict[str, str]  # what was rewritten ({} when not improved)
    psnr_before: float
    psnr_after: float  # psnr_before when not improved
    improved: bool  # False: the steps did not raise the PSNR, nothing was rewritten


class CamerasReply(TypedDict):
    path: str  # the cameras.json written
    width: int
    height: int
    names: list[str]  # the views' source names
    views: list[dict[str, Any]]  # that cameras.json's entries (image, fx, fy, cx, cy, matrix)
    warnings: list[str]


class BakeToReply(TypedDict):
    files: dict[str, str]  # {"texture": the baked image}
    faces: int
    texture_size: int


class UnloadReply(TypedDict):
    unloaded: int  # how many models were loaded


class ShutdownReply(TypedDict):
    pass


REPLIES: dict[str, type] = {
    "hello": HelloReply,
    "ping": PingReply,
    "load": LoadReply,
    "reconstruct": ReconstructReply,
    "refine": RefineReply,
    "cameras": CamerasReply,
    "bake_to": BakeToReply,
    "unload": UnloadReply,
    "shutdown": ShutdownReply,
}
ENVELOPE = ("id", "type", "seconds")  # what every result carries besides its fields


def check_reply(op: str, message: Mapping[str, Any]) -> Mapping[str, Any]:
    """A `result` reply to `op`, checked against its definition: every required field there and none unknown
    (`id`, `type` and `seconds` aside); a `GTRError` naming the field otherwise (a backend and an add-on of
    different versions, or a bug)."""
    kind = REPLIES[op]
    required, optional = set(kind.__required_keys__), set(kind.__optional_keys__)  # type: ignore[attr-defined]
    fields = set(message) - set(ENVELOPE)
    missing, unknown = sorted(required - fields), sorted(fields - required - optional)
    if missing or unknown:
        what = f"lacks {', '.join(map(repr, missing))}" if missing else f"has unknown {', '.join(map(repr, unknown))}"
        raise GTRError(f"the backend's reply to {op!r} {what}: update the add-on or the backend so they match")
    return message


# ---------------------------------------------------------------------------------------------------------------
# A finished job folder's manifest (JOB_MANIFEST): written by the backend last, read by both sides.


class JobManifest(TypedDict):
    views: dict[str, Any]  # the request's view spec (path, orbit, zero123pp)
    weights: str | None
    weights_name: str
    device: str
    texture_from_views: bool
    options: dict[str, Any]
    timings: dict[str, float]
    fidelity: FidelityFields
    created: str  # local time, "%Y-%m-%d %H:%M:%S"


def job_manifest_text(manifest: JobManifest) -> str:
    """The manifest as strict JSON: a number that is not finite (a score nothing could measure) is written as
    null, never as NaN or Infinity, which JSON does not have."""
    return json.dumps(_finite_or_none(manifest), indent=2, allow_nan=False) + "\n"


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def read_job_manifest(job: Path) -> dict[str, Any] | None:
    """A job folder's manifest as written (`JobManifest`; older jobs may lack fields), or None when there is
    none or it is not a JSON object."""
    try:
        manifest = json.loads((job / JOB_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return manifest if isinstance(manifest, dict) else None


# ---------------------------------------------------------------------------------------------------------------
# cameras.json (VIEWS_FORMAT): the one writer and the one reader. Written always in the backend frame with OpenCV
# camera axes and camera-to-world poses; read with either axes convention and either pose direction.

CAMERA_AXES = ("opencv", "opengl")
POSES = ("camera_to_world", "world_to_camera")


def write_cameras(folder: Path, views: Sequence[Mapping[str, Any]]) -> Path:
    """Write `folder`/cameras.json (all or nothing) for `views`: entries with the image's file name beside it,
    fx fy cx cy in its pixels and `matrix`, the OpenCV camera-to-world 4x4 (rows) in the backend frame (+Y up),
    and optionally `depth`, `held_out` and the add-on's keys. Returns its path."""
    document = {
        "format": VIEWS_FORMAT,
        "camera_axes": "opencv",
        "pose": "camera_to_world",
        "world_up": "+y",
        "views": [dict(view) for view in views],
    }
    return atomic_write(folder / CAMERAS_JSON, json.dumps(document, indent=1))


@dataclass(frozen=True)
class CamerasFile:
    """A cameras.json as read: its axes and pose conventions, and its views (objects; each one's fields are
    the loader's to check)."""

    path: Path
    camera_axes: str  # one of CAMERA_AXES
    pose: str  # one of POSES
    views: list[dict[str, Any]]


def cameras_field(
    data: Mapping[str, Any], key: str, where: str, allowed: Sequence[str] | None = None, default: Any = None
) -> Any:
    """`data[key]` (a cameras.json document or one of its views), a `ViewError` naming `where` when it is
    missing (and has no default) or not one of `allowed`."""
    if key not in data:
        if default is not None:
            return default
        raise ViewError(f"{where}: missing field {key!r}")
    value = data[key]
    if allowed is not None and value not in allowed:
        raise ViewError(f"{where}: field {key!r} is {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def read_cameras(path: Path) -> CamerasFile:
    """A cameras.json (or the folder holding one), its conventions checked; a `ViewError` naming the file and
    the field otherwise."""
    json_path = path / CAMERAS_JSON if path.is_dir() else path
    problem = input_problem(json_path, "camera file")
    if problem:
        raise ViewError(problem)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ViewError(f"{json_path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ViewError(f"{json_path}: expected a JSON object with 'format' and 'views'")
    where = str(json_path)
    cameras_field(data, "format", where, allowed=[VIEWS_FORMAT])
    axes = cameras_field(data, "camera_axes", where, allowed=CAMERA_AXES)
    pose = cameras_field(data, "pose", where, allowed=POSES)
    cameras_field(data, "world_up", where, allowed=["+y"])
    views = cameras_field(data, "views", where)
    if not isinstance(views, list) or not views:
        raise ViewError(f"{where}: 'views' must be a non-empty list")
    for i, view in enumerate(views):
        if not isinstance(view, dict):
            raise ViewError(f"{where}, view {i}: each view must be an object with 'image' and 'matrix'")
    return CamerasFile(json_path, axes, pose, views)


# ---------------------------------------------------------------------------------------------------------------
# Cameras that do not go around the object. Each view's direction is its camera centre seen from the object's
# centre (the world origin, where every loaded camera looks); around the object means around its up axis (+Y).

SAME_DIRECTION_DEG = 20.0  # views whose directions all lie within this angle of each other show one side only
POLE_DEG = 15.0  # views within this angle of straight above or below the object say nothing about its sides


def camera_spread_warning(poses: Sequence[Sequence[Sequence[float]]]) -> str | None:
    """A sentence for the user when the cameras (camera-to-world 4x4 matrices, row by row, in the backend frame:
    the object at the origin, +Y up) do not go around the object: their directions from it all lie within
    `SAME_DIRECTION_DEG`, or, around the up axis, all within half a turn (the far side unseen). None when they
    go around it (or there are fewer than two)."""
    directions = []
    for pose in poses:
        centre = [float(pose[row][3]) for row in range(3)]
        length = math.sqrt(sum(c * c for c in centre))
        if length > 1e-9:
            directions.append([c / length for c in centre])
    n = len(directions)
    if n < 2:
        return None
    widest = max(
        math.degrees(math.acos(max(-1.0, min(1.0, sum(a * b for a, b in zip(u, v, strict=True))))))
        for i, u in enumerate(directions)
        for v in directions[i + 1 :]
    )
    if widest < SAME_DIRECTION_DEG:
        return (
            f"the {n} cameras look at the object from nearly the same direction (at most {widest:.0f} degrees "
            "apart), so they show one side of it and the rest is a guess; take the views from around the object "
            "(e.g. 4 at 90-degree steps)"
        )
    side = math.sin(math.radians(POLE_DEG))
    azimuths = sorted(math.degrees(math.atan2(z, x)) % 360.0 for x, y, z in directions if math.hypot(x, z) > side)
    if not azimuths:
        return (
            f"the {n} cameras all look at the object from straight above or below, so its sides are not seen and "
            "will be a guess; take the views from around the object (e.g. 4 at 90-degree steps)"
        )
    gaps = [b - a for a, b in itertools.pairwise(azimuths)] + [360.0 - azimuths[-1] + azimuths[0]]
    if max(gaps) > 180.0 + 1e-6:
        return (
            f"the {n} cameras do not go around the object: around its up axis they all lie within "
            f"{360.0 - max(gaps):.0f} degrees, on one side of it, so its far side is not seen and will be a guess; "
            "add views from the other side"
        )
    return None
