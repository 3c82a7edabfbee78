"""The backend as a long-lived process for the Blender add-on: `python -m gtr_backend.server`.

Protocol (version `PROTOCOL`, `gtr_backend.contract`): one JSON object per line. Requests on stdin carry an
`id` (an integer or a string), an `op` and optionally the `protocol` they speak (refused when it is not this
one); every request is checked field by field before any work (`contract.check_request`), and anything wrong
gets a one-line error naming the field. A request whose id is that of a request still running or queued is
refused: its error reply has a null `id`, so the first request's replies stay its own. Replies on stdout
carry the request's `id` and a `type`: any number of `progress` lines (`stage`, `fraction` in [0, 1]), then
exactly one `result` or `error` (`message`: plain words for the user). A result's fields are defined once,
in the contract (`contract.REPLIES`: `HelloReply`, `ReconstructReply`, ...), which the server checks every reply
against and the add-on reads them by.
Large data never goes through the pipe: views are read from a view folder and results are written to a job
folder, both named in the request; job folders must lie inside `--jobs-root` (the add-on's jobs folder) and
are written all or nothing (a new folder, manifest last, swapped in). Logging goes to stderr.

The package: `reader` (the process: the reader thread, the queue, `main`), `session` (the requests' handlers
by a table, the model kept loaded, the warm-up, `run_request`, which the add-on's in-process backend uses too),
`jobs` (job folders written and read), `requests` (a request's options and views), `warm` (the warm-up's
kernels). Devices are `gtr_backend.devices`'.

Requests:
- `hello` -> `protocol`, `version`, `torch`, `device` (GPU name or CPU), `cuda`, `weights` (the default file or null)
- `ping` -> answered at once even while a job runs (`busy`): the add-on's check that the backend is alive.
- `reconstruct` {`views`: {`path`, `orbit`: {azimuths, elevation, fov, distance} or null, `zero123pp`},
  `job`: folder, `weights`, `device`, `options`: {`refine_steps`, `texture_size`, `mesh_resolution`,
  `target_faces`, `auto_faces`, `lods`, `uv`, `normal_map`, `vertex_colors`, `geometry_refine`,
  `geometry_steps`, `texture_from_views`} (each optional: `contract.RECONSTRUCT_OPTIONS`)}
  -> writes `mesh.glb`, `mesh.npz` (vertices (V, 3) float32 in the backend frame, faces (F, 3) int32,
  uv (V, 2) float32 or, with vertex colours, colors (V, 3)), `texture.png` (none with vertex colours),
  `material.png` and `emission.png` (when the views carry those passes), `lod<k>_*` for each further level
  of detail (`contract.job_lod_file`; mesh.glb holds the chain),
  `state.safetensors` (the refined colour field) and `job.json` (the views, the options, the weights' name,
  the timings, the fidelity) into `job`; replies with the files, timings, the refinement's PSNR, the
  options, the `fidelity` (`gtr_backend.fidelity`: each input view's and the worst one's mask IoU, the PSNR
  inside the masks) and `warnings` (as for `cameras`). Out of memory, the error
  carries `retry_options`: lower settings to offer as a retry.
- `refine` {`job`, `steps` (at least 1)} -> continues the texture refinement of a finished job against its
  views (from the saved colour field, on the saved mesh and UV layout), bakes it as the reconstruction did
  (the views' own colours laid over the field, unless the job was made with `texture_from_views` off) and
  rewrites `texture.png` and the state; when the steps do not raise the input-view PSNR, nothing is
  rewritten and the reply says `improved: false`.
- `cameras` {`views` (as for `reconstruct`), `folder`: a new or empty folder inside the jobs folder} -> reads the
  views with the backend's loaders (any format: a cameras.json folder, the GTR release, an orbit, a Zero123++
  grid) and writes them into `folder` as a cameras.json view folder (RGBA PNGs as loaded, OpenCV camera-to-world
  in the backend frame); replies with its `path`, the views' `width` and `height`, their source `names`, the
  `views` entries of that cameras.json (image, fx, fy, cx, cy, matrix) and `warnings` (sentences: cameras that
  do not go around the object, `contract.camera_spread_warning`). The add-on builds its camera rig from it.
- `bake_to` {`job`: a finished job, `folder`: inside the jobs folder, holding `target.npz` (vertices (V, 3)
  float32 in the job's backend frame, faces (F, 3), uv (V, 2)), `texture_size`} -> the job's colours (its
  refined field under its views' own colours) baked onto that UV layout, written as `baked.png` in `folder`
  (Bake to Active).
- `unload` -> drops the loaded model and gives its memory back (`unloaded`: how many were loaded).
- `load` {`weights`, `device`} -> loads the model ahead of the first request (the add-on sends it when views
  are imported, so the first Reconstruct click does not wait for it); replies with `warm_up`, what the
  start-up warm-up measured (below), or null.
- `cancel` {`target`: the id (an integer or a string) of a running or queued request} -> that request stops at
  its next check and replies `error` with `cancelled: true` (a cancel for any other id is ignored).
- `shutdown`.
Warm-up: when the process starts (`--device`, `--weights`; `--no-warm-up` turns it off) a background thread
imports torch and the backend, loads the model and, on a GPU, runs every kind of kernel a reconstruction runs
once on tiny inputs (`warm_kernels`: the network, the field, marching cubes, the rasterizer with its gradients,
an optimizer step; on CUDA this loads nvdiffrast's plugin, building it on first use), so the handshake is
answered at once and the first request finds everything ready. A request that needs the model waits for the
warm-up (showing its stage as progress; a cancel stops the wait); a warm-up that fails is one line in the log,
and requests then load the model themselves. The model stays loaded between requests, so the second
reconstruction skips loading it; after every job the memory its tensors held is given back to the device. When
stdin closes the server finishes the running request and exits.
"""

from __future__ import annotations

from ..contract import PROTOCOL
from .jobs import read_bake_target, write_job
from .reader import MAX_LINE, main, serve
from .requests import request_options
from .session import HANDLERS, Session, run_request
from .warm import warm_kernels

__all__ = [
    "HANDLERS",
    "MAX_LINE",
    "PROTOCOL",
    "Session",
    "main",
    "read_bake_target",
    "request_options",
    "run_request",
    "serve",
    "warm_kernels",
    "write_job",
]
