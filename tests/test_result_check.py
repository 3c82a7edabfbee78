"""A result that fails the views it was made from is written but never called done: `gtr reconstruct` exits with
its own status, says why in one line naming the views, and the server's first warning says so."""

import json
import math

import pytest
import torch
import trimesh
from captures import capture

from gtr_backend.cli import main
from gtr_backend.contract import EXIT_FAILS_INPUTS, fidelity_problem
from gtr_backend.mesh import Mesh
from gtr_backend.reconstruction import ReconstructOptions
from gtr_backend.views import ViewSet
from gtr_backend.views.loaders import save_views

FAST = ReconstructOptions(auto_faces=True, texture_size=256)


def _sheet() -> Mesh:
    """A 1.4 x 1.4 sheet with no thickness, turned 10 and 5 degrees (a plane before Solidify)."""
    shape = trimesh.creation.box(extents=(1.4, 1.4, 0.0))
    shape.apply_transform(trimesh.transformations.euler_matrix(math.radians(10), math.radians(5), 0.0))
    return Mesh(torch.tensor(shape.vertices, dtype=torch.float32), torch.tensor(shape.faces))


@pytest.fixture(scope="module")
def sheet_views() -> ViewSet:
    return capture(_sheet(), size=128, count=12)


def test_a_sheet_with_no_thickness_is_delivered_but_not_called_done(sheet_views, tmp_path, capsys):
    """Its views see a plane from both sides; what comes back matches none of them (mask IoU about 0.01 on every
    view). The command still writes the file, exits with its own status and says what is likely wrong."""
    folder = tmp_path / "sheet"
    save_views(sheet_views, folder)
    out = tmp_path / "sheet.glb"
    code = main(["reconstruct", str(folder), "-o", str(out), "--faces", "auto", "--texture-size", "256", "--json"])
    assert code == EXIT_FAILS_INPUTS and out.is_file()
    summary = json.loads(capsys.readouterr().out)
    assert max(summary["fidelity"]["mask_iou_per_view"]) < 0.5
    assert "no thickness" in summary["problem"] and "view_000" in summary["problem"]


def test_the_check_reads_what_travels():
    """The add-on checks the fidelity a reply carries with the same function: held-out views that the result
    misses, and colours far from the views', are problems too; a job made before held-out views is not."""
    fine = {"mask_iou": 0.97, "mask_iou_per_view": [0.97, 0.98], "psnr": 30.0, "held_out_views": 0}
    assert fidelity_problem(fine) is None
    assert "kept out" in (fidelity_problem(fine | {"held_out_views": 2, "held_out_mask_iou": 0.3}) or "")
    assert "colours" in (fidelity_problem(fine | {"psnr": 6.0}) or "")
    assert fidelity_problem({}) is None
    # One view far below the others that match: that view (its camera or mask) is the odd one out.
    odd = fidelity_problem(fine | {"mask_iou_per_view": [0.97, 0.31, 0.98]}, ["front.png", "side.png", "back.png"])
    assert odd is not None and "side.png" in odd and "front.png" not in odd and "camera" in odd
