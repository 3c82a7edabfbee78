"""Thumbnails of the imported views, in a preview collection (not in the .blend: importing views changes no data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy.utils.previews

_PREVIEWS: dict[str, Any] = {}  # the one preview collection of this session, made on first use


def show_thumbnails(paths: list[Path]) -> None:
    clear_thumbnails()
    collection = bpy.utils.previews.new()
    for path in paths:
        collection.load(str(path), str(path), "IMAGE")
    _PREVIEWS["views"] = collection


def thumbnail_icons() -> list[int]:
    collection = _PREVIEWS.get("views")
    return [preview.icon_id for preview in collection.values()] if collection is not None else []


def clear_thumbnails() -> None:
    collection = _PREVIEWS.pop("views", None)
    if collection is not None:
        bpy.utils.previews.remove(collection)
