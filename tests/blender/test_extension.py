import itertools

import numpy as np


def test_installs_enables_and_disables_cleanly(blender, extension_zip, bpy_python, request):
    result = blender("install_enable_disable.py", str(extension_zip), python=bpy_python)
    assert result["blender"].startswith(request.node.callspec.id.split()[0])  # the Blender this run is for
    # The preferences' defaults are the backend's definitions, every one of them.
    from gtr_backend.contract import RECONSTRUCT_OPTIONS

    assert result["defaults"] == {name: option.default for name, option in RECONSTRUCT_OPTIONS.items()}
    # Building nvdiffrast in Set Up Backend is the user's choice (its licence, nvcc, minutes): off unless asked.
    rasterizer = result["rasterizer_preference"]
    assert rasterizer["default"] is False and rasterizer["name"] == "Build the fast GPU rasterizer now"
    assert "non-commercial" in rasterizer["text"] and "nvcc" in rasterizer["text"]
    assert result["before"] == []
    assert "GTR_PT_panel" in result["registered"]
    assert {
        "import_views",
        "reconstruct",
        "render_selected_to_3d",
        "refine_texture",
        "cancel",
        "setup_backend",
        "repair_backend",
        "check_backend",
        "copy_diagnostics",
        "export_views",
        "export_glb",
        "bake_to_active",
        "retry_lower",
        "unload_model",
    } <= set(result["operators"])
    assert len(result["classes"]) == 18 and "GTR_AddonPreferences" in result["classes"]
    assert result["classes_after"] == []
    assert result["had_props"] and not result["torch_imported"]  # the add-on alone never imports torch
    assert result["after"] == [] and not result["props_after"] and not result["enabled_after"]


def test_render_selected_reconstruct_refine_and_example_end_to_end(blender, extension_zip, tmp_path, bpy_python):
    """The scene script that renders the README's first picture (scripts/readme_pictures.py), at small settings."""
    from pathlib import Path

    from PIL import Image

    root = Path(__file__).resolve().parents[2]
    picture = tmp_path / "picture.png"
    r = blender("end_to_end.py", str(extension_zip), str(root / "examples" / "toy"), str(picture), python=bpy_python)
    alpha = np.asarray(Image.open(picture))[..., 3] > 0
    half = alpha.shape[1] // 2
    assert alpha[:, :half].mean() > 0.02 and alpha[:, half:].mean() > 0.02  # source left, result right
    size = 256
    assert r["faces"] > 200 and r["uv_layers"] == 1 and r["image_packed"] and r["image_size"] == [size, size]
    assert r["source_matrix_after"] == r["source_matrix_before"] and r["source_vertices"][0] == r["source_vertices"][1]
    assert r["scenes"] == ["Scene"] and r["selected_after"] == ["Source"]
    # The result takes the source's rotation and scale and sits beside it along X.
    result, source = np.array(r["result_matrix"]), np.array(r["source_matrix_before"])
    assert np.allclose(result[:3, :3], source[:3, :3], atol=1e-5)
    offset = result[:3, 3] - source[:3, 3]
    assert offset[0] > 0 and np.allclose(offset[1:], 0, atol=1e-5)
    moved_back = np.array(r["result_centre"]) - offset
    assert np.linalg.norm(moved_back - np.array(r["source_centre"])) < 0.25 * max(r["source_size"])
    # Captured with depth from 16 cameras all round, the result keeps the source's size (measured: within 1 %;
    # from 4 views without depth it was within 35 %).
    assert np.allclose(r["result_size"], r["source_size"], rtol=0.03), (r["result_size"], r["source_size"])
    # Scored on 2 views kept out of the fit, the checkered result still matches them (measured: 27.9 dB at
    # these test settings: 128 px views, grid 48, 5 fit steps).
    assert r["held_out_psnr"] is not None and r["held_out_psnr"] > 24.0, r["summary"]
    assert any(line.startswith("on held-out views: ") for line in r["summary"])
    old, new, undone, redone = r["undo"]
    assert new != old and undone == old and redone == new
    # Refine Texture changes the colour field; the views' own colours cover most of the surface, so the texture
    # moves a little (measured 3e-5 mean; the old 4-view capture moved it 1e-3).
    assert "PSNR" in r["refine_status"]["info"] and r["old_image_kept"] and r["texture_changed"] > 1e-6
    before, after = (float(v) for v in r["refine_status"]["info"].split("PSNR ")[1].split(" dB")[0].split(" -> "))
    assert after > before
    assert r["example_objects"] == ["GTR toy", "GTR toy v2"]  # running again adds a version, never replaces
    # The Normal Map preference is on, but a capture with depth is its own surface: no map, and the panel says so.
    assert not r["normal_map"] and "no normal map" in r["capture_status"]["message"] + r["warning"]


def test_failures_and_cancel_leave_the_scene_unchanged(blender, extension_zip, tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "toy"
    r = blender("failures.py", str(extension_zip), str(example), str(tmp_path))
    for name in (
        "bad weights, reconstruct",
        "bad weights, render selected",
        "cancelled, reconstruct",
        "backend dies",
        "no backend python",
    ):
        outcome = r[name]
        assert outcome["result"] == ["CANCELLED"] and outcome["unchanged"] and not outcome["running"], (name, outcome)
        assert "Traceback" not in outcome["message"], (name, outcome)
    assert "broken.safetensors" in r["bad weights, reconstruct"]["message"]
    assert "broken.safetensors" in r["bad weights, render selected"]["message"]
    assert r["cancelled, reconstruct"]["message"].startswith("cancelled")
    assert "stopped unexpectedly" in r["backend dies"]["message"]
    assert "Set Up Backend" in r["no backend python"]["reported"]
    assert r["bad views"]["raised"] and "missing.png" in r["bad views"]["message"] and r["bad views"]["unchanged"]
    assert r["bad views"]["views_path"].endswith("cameras.json")  # the earlier, good import is kept
    assert r["recovers"]["result"] == ["FINISHED"] and not r["recovers"]["unchanged"]
    assert r["not kept"]["result"] == ["FINISHED"]
    assert len(r["job folders"]) == 1  # the one kept by Keep Input Views; failed ones and the unkept one are gone
    assert "broken.safetensors" in r["log"] and "Traceback (most recent call last)" in r["log"]
    diagnostics = r["diagnostics"]
    assert "Blender 5." in diagnostics and "backend_mode" in diagnostics and "broken.safetensors" in diagnostics
    assert r["seconds"] > 0


def test_set_up_backend_installs_offline_for_real_resumes_and_repairs(blender, extension_zip, tmp_path):
    r = blender("setup_and_check.py", str(extension_zip), str(tmp_path), timeout=1800)
    offline = r["offline, no wheels"]
    assert offline["result"] == ["CANCELLED"] and "Allow Online Access" in offline["reported"]
    missing = r["wheels missing"]
    assert missing["result"] == ["CANCELLED"] and missing["message"].startswith("backend setup failed")
    assert "torch" in missing["message"] and not missing["running"] and "again resumes" in missing["message"]
    # A real CPU install from a local wheels folder (no network): torch is installed, then tqdm's wheel is
    # missing; with it back, Set Up goes on from the step that failed.
    assert {"torch", "numpy", "pillow", "tqdm", "sympy", "setuptools"} <= set(r["wheels"])
    failed = r["one wheel missing"]
    assert failed["result"] == ["CANCELLED"] and "tqdm" in failed["message"]
    assert r["done after failure"] == ["environment", "torch"]
    resumed = r["resumed"]
    assert resumed["result"] == ["FINISHED"] and resumed["message"].startswith("backend ready (PyTorch CPU)")
    assert "GTR setup: resuming" in r["log"] and "GTR setup: torch: already done" in r["log"]
    assert r["environment_python_exists"] and r["environment_inside_user_folder"] and r["imports_from_environment"]
    check = r["check in the environment"]
    assert check["result"] == ["FINISHED"] and check["info"].startswith("CPU - gtr_backend 0.1.0, torch 2.")
    assert r["python_path"] == ""  # the environment just made is the one used
    # A repair that fails leaves the working environment; one that succeeds replaces it, leaving nothing behind.
    broken = r["repair fails"]
    assert broken["result"] == ["CANCELLED"] and "the old environment is unchanged" in broken["message"]
    assert r["kept after failed repair"] and r["check after failed repair"]["result"] == ["FINISHED"]
    assert r["repair"]["result"] == ["FINISHED"] and r["replaced by repair"] and r["leftovers"] == []
    check = r["check"]
    assert check["result"] == ["FINISHED"] and check["info"].startswith("CPU - gtr_backend 0.1.0, torch 2.")
    assert "gtr-small-starter.safetensors" in check["info"]


def test_in_process_backend_runs_the_bundled_backend_inside_blender(blender, extension_zip, tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "toy"
    r = blender("in_process.py", str(extension_zip), str(example), str(tmp_path))
    assert r["result"] == ["FINISHED"] and r["objects"] == ["GTR toy"] and r["faces"] > 200, r
    assert r["torch_in_process"] and r["backend_module"] == "bl_ext.user_default.gtr.gtr_backend.server"
    assert r["seconds"] > 0  # replies carry their timings in this mode too
    assert r["failed"] == ["CANCELLED"] and "broken.safetensors" in r["log"] and "Traceback" in r["log"]


def test_import_views_copies_orbit_images_and_names_bad_files(blender, extension_zip, tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "toy"
    r = blender("import_views.py", str(extension_zip), str(example), str(tmp_path))
    assert r["orbit images"]["result"] == ["FINISHED"] and len(r["copied"]) == 4
    assert r["objects"] == ["GTR views"]
    kept = r["orbit images"]["views_path"]
    for name, words in (("mixed sizes", "differ in size"), ("not an image", "notes.png"), ("square grid", "3x2 grid")):
        assert r[name]["result"] == ["CANCELLED"] and words in r[name]["reported"], (name, r[name])
        assert r[name]["views_path"] == kept  # a failed import changes nothing
    assert "small.png 64x64" in r["mixed sizes"]["reported"]
    # The panel says why the import failed, not that the one before succeeded.
    assert "as cameras at the 3D cursor" in r["orbit images"]["message"] and not r["orbit images"]["warning"]
    assert "differ in size" in r["mixed sizes"]["message"] and "differ in size" in " ".join(r["mixed sizes"]["panel"])
    # Cameras all at one pose: imported, with a warning in the panel (nothing of it before).
    one_pose = r["one pose"]
    assert one_pose["result"] == ["FINISHED"] and "nearly the same direction" in one_pose["warning"]
    panel = " ".join(one_pose["panel"])
    assert "nearly the same direction" in panel and "nearly the same" not in " ".join(r["orbit images"]["panel"])
    folder = r["image is a folder"]
    assert (
        folder["result"] == ["CANCELLED"]
        and "view_001.png is a folder; give the image file itself" in folder["reported"]
    )
    assert not folder["warning"]  # a failed import clears the last one's warning
    checked = {"view_000.png", "view_001.png", "view_002.png", "view_003.png", "small.png", "notes.png"}
    assert not checked & set(r["images_left"])  # checking the files loaded nothing into the .blend


def test_versions_fidelity_export_bake_to_active_and_retry(blender, extension_zip, tmp_path):
    """Blender 5.0 (its Python has trimesh, to read the exported GLB back); the scene script that renders the
    README's workflow picture (scripts/readme_pictures.py), at small settings."""
    from PIL import Image

    picture = tmp_path / "workflow.png"
    (tmp_path / "scratch").mkdir()
    r = blender("workflow.py", str(extension_zip), str(tmp_path / "scratch"), str(picture))
    alpha = np.asarray(Image.open(picture))[..., 3] > 0
    thirds = np.array_split(alpha, 3, axis=1)
    assert all(third.mean() > 0.02 for third in thirds)  # the cube, its reconstruction, the baked copy
    first = r["first"]
    assert first["collection"] == ["GTR Results"] and first["version"] == 1
    assert first["mask_iou"] > 0.9 and first["psnr"] > 15  # the backend's fidelity score, kept on the result
    assert first["summary"][0] == "Cube GTR, version 1" and "fidelity: mask IoU" in first["summary"][1]
    assert first["settings"]["target_faces"] == 4000 and first["settings"]["texture_size"] == 256
    assert first["weights"].endswith(".safetensors") and first["faces"] <= 4400
    # Origin at the centre of the base; the surface where the cube is (Place Beside Source off).
    low, high = np.array(first["local_low"]), np.array(first["local_high"])
    assert abs(low[2]) < 1e-5 and np.allclose((low[:2] + high[:2]) / 2, 0, atol=1e-5)
    assert np.linalg.norm(np.array(first["world_centre"]) - first["cube_centre"]) < 0.15
    export = r["export"]
    assert np.allclose(export["low"], export["expected_low"], atol=1e-4)
    assert np.allclose(export["high"], export["expected_high"], atol=1e-4)
    assert export["missing_folder"] == ["CANCELLED"] and export["files"] == ["cube.glb"]  # no half-written file
    assert "does not exist" in export["missing_message"] and "Traceback" not in export["missing_message"]
    # Bake to Active: every face the cameras saw shows the result's colour there; the cube's 5 seen faces
    # differ from each other, so a colour in the wrong place would fail.
    bake = r["bake"]
    assert len(bake["faces"]) == 5 and bake["packed"] and bake["uv_unchanged"] and bake["vertices_unchanged"]
    for face in bake["faces"]:  # (Faces: Auto makes the cube's sides a few large faces: one is enough to compare)
        assert face["near"] >= 1 and np.abs(np.array(face["baked"]) - face["expected"]).max() < 0.08, face
    expected = np.array([f["expected"] for f in bake["faces"]])
    assert min(np.abs(a - b).max() for i, a in enumerate(expected) for b in expected[i + 1 :]) > 0.2
    # The new material goes into the active slot (the third) only; the others keep theirs; Ctrl+Z: as it was.
    assert bake["material"] == "Cube copy GTR bake" and bake["slots"] == ["face 0", "face 1", "Cube copy GTR bake"] + [
        f"face {i}" for i in range(3, 6)
    ]
    assert bake["undone_slots"] == bake["slots_before"] == [f"face {i}" for i in range(6)]
    # Disabled, the button's tooltip says why; a target without faces is refused in one line.
    assert "Select one GTR result besides Cube copy" in r["no source"]
    assert "Loose points has no faces after its modifiers" in r["no faces"] and "zero-size" not in r["no faces"]
    assert bake["apart"] == ["CANCELLED"] and "is not where" in bake["apart_message"]
    # Out of memory: one line, lower settings offered; the retry runs with them and adds version 2.
    oom = r["oom"]
    assert oom["result"] == ["CANCELLED"] and "out of GPU memory during 'carve'" in oom["message"]
    assert "mesh resolution 48" in oom["message"] and "Traceback" not in oom["message"]
    assert oom["retry"] == {"mesh_resolution": 48, "texture_size": 256, "target_faces": 2000}
    retry = r["retry"]
    assert retry["prefs"] == [48, "256", 2000] and retry["retry_cleared"]
    assert retry["objects"] == ["Cube GTR", "Cube GTR v2"] and retry["version"] == 2
    assert retry["settings"]["mesh_resolution"] == 48 and retry["settings"]["target_faces"] == 2000
    # Import: a cube's 12 edges are creases (sharp), its 6 diagonals are not; vertex colours come through.
    textured, painted = r["textured"], r["painted"]
    assert textured["edges"] == 18 and textured["sharp"] == 12 and textured["smooth_faces"] == 12
    assert textured["base_node"] == "ShaderNodeTexImage" and textured["uv_layers"] == 1
    assert painted["uv_layers"] == 0 and painted["color_attributes"] == ["Color"]
    assert painted["base_node"] == "ShaderNodeVertexColor" and painted["colour_error"] < 1e-5
    assert abs(textured["origin_low_z"] + 0.5) < 1e-6 and np.allclose(textured["origin"], [0, 0, -0.5])
    assert r["unloaded"] == "model unloaded: its memory is free" and r["unloaded_idle"] == "no model is loaded"
    assert not r["started_by_unload"]
    # A mirrored frame (a source with a negative scale): faces turned outwards, every corner keeps its uv.
    mirrored = r["mirrored"]
    assert textured["uv_error"] < 1e-6 and mirrored["uv_error"] < 1e-6
    assert textured["normals_out"] == mirrored["normals_out"] == 12


def test_render_selected_makes_game_ready_assets(blender, extension_zip, tmp_path):
    """Render Selected at its defaults (512 px, 16 views, Faces: Auto): a cube turned on two axes comes out flat
    and sharp in few faces; a sphere half gold metal, half blue plastic, gets a metallic-roughness texture that
    gives each half its values in the exported GLB, and three levels of detail named as a chain; the user's
    materials are exactly as before each capture."""
    import trimesh

    out = tmp_path / "out"
    out.mkdir()
    r = blender("game_ready.py", str(extension_zip), str(out), timeout=900)
    cube, ball = r["cube"], r["ball"]
    for run in (cube, ball):
        assert run["done"] == ["FINISHED"], run["status"]
        assert run["materials_unchanged"] and run["slots_unchanged"]
        assert not any("GTR capture" in name for name in run["materials"])  # no copy left behind
    # The cube: in its own frame (the result lies beside it, turned alike), distances to the unit box and normals.
    vertices, faces = np.array(cube["result"]["vertices"]), np.array(cube["result"]["faces"])
    placement, source = np.array(cube["placement"]), np.array(cube["source_matrix"])
    to_source = source @ np.linalg.inv(placement)  # the result's placement -> the source's
    local = (np.linalg.inv(source) @ to_source @ np.c_[vertices, np.ones(len(vertices))].T).T[:, :3]
    mesh = trimesh.Trimesh(local, faces, process=False)
    points, index = trimesh.sample.sample_surface(mesh, 50000, seed=0)
    q = np.abs(points) - 0.5
    distance = np.abs(np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0))
    axis = np.argmax(np.abs(points), axis=1)
    truth = np.zeros_like(points)
    truth[np.arange(len(points)), axis] = np.sign(points[np.arange(len(points)), axis])
    angle = np.degrees(np.arccos(np.clip((mesh.face_normals[index] * truth).sum(axis=1), -1, 1)))
    print(f"cube: {len(faces)} faces, normals {angle.mean():.3f} deg, p99 {np.percentile(distance, 99) * 100:.3f} %")
    assert len(faces) <= 200
    assert angle.mean() <= 0.5
    assert np.percentile(distance, 99) <= 0.0025  # of the edge (1)
    # The ball: LOD0, LOD1, LOD2 in a collection of the result's name, each about a quarter of the one before.
    names = [name for name, _, _ in ball["chain"]]
    counts = [count for _, count, _ in ball["chain"]]
    assert names == ["Ball GTR_LOD0", "Ball GTR_LOD1", "Ball GTR_LOD2"] and ball["collections"] == ["Ball GTR"]
    assert [hidden for _, _, hidden in ball["chain"]] == [False, True, True] == ball["hidden_after_export"]
    for larger, smaller in itertools.pairwise(counts):
        assert 0.15 * larger <= smaller <= 0.35 * larger, counts
    assert ball["export"] == ["FINISHED"] and ball["roughness_linked"] and ball["warning"] == ""
    scene = trimesh.load(ball["glb"])
    assert sorted(scene.geometry) == names
    lod0 = scene.geometry[names[0]]
    transform = scene.graph[names[0]][0]
    world = trimesh.transform_points(lod0.vertices, transform)
    material = lod0.visual.material
    image = np.asarray(material.metallicRoughnessTexture.convert("RGB")).astype(np.float32) / 255
    uv = lod0.visual.uv
    h, w = image.shape[:2]
    texel = image[np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1), np.clip((uv[:, 0] * w).astype(int), 0, w - 1)]
    x = world[:, 0] - (world[:, 0].max() + world[:, 0].min()) / 2  # glTF +X is Blender's +X
    for half, roughness, metallic in ((x > 0.15, 0.25, 1.0), (x < -0.15, 0.9, 0.0)):
        assert abs(texel[half, 1].mean() - roughness) <= 0.1 and abs(texel[half, 2].mean() - metallic) <= 0.1
