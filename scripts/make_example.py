"""Regenerate examples/toy: 4 RGBA views (512x512) of the procedural toy object with their cameras.

Run from the repository root: .venv/bin/python scripts/make_example.py
"""

from pathlib import Path

from gtr_backend.views import save_views
from gtr_lab.synthetic import orbit_render, toy_object

if __name__ == "__main__":
    folder = Path(__file__).resolve().parent.parent / "examples" / "toy"
    views = orbit_render(toy_object(), azimuths_deg=(30.0, 120.0, 210.0, 300.0), elevation_deg=20.0, size=512)
    save_views(views, folder)
    print(f"wrote {views.num_views} views to {folder}")
