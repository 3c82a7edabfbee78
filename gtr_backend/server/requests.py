"""What a request's fields mean to the backend: its `options` as `ReconstructOptions`, its `views` spec loaded
as a `ViewSet` (a folder in any format, an orbit, a Zero123++ grid), and what a reply says about the views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import RECONSTRUCT_OPTIONS


def request_options(raw: dict[str, Any]) -> Any:
    """A request's `options` object -> `ReconstructOptions`: what it names, the definitions' defaults for the
    rest (an add-on's 0 for `mesh_resolution` means "by the device", as None does)."""
    from ..reconstruction import ReconstructOptions

    values: dict[str, Any] = {}
    for name, option in RECONSTRUCT_OPTIONS.items():
        value = raw.get(name, option.default)
        if isinstance(option.default, bool):
            value = _flag(raw, name, option.default)
        elif name == "mesh_resolution":
            value = value or None
        values[name] = value
    return ReconstructOptions(**values)


def _flag(options: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false option of a request: JSON true or false (absent: the default)."""
    from ..errors import GTRError

    value = options.get(name, default)
    if not isinstance(value, bool):
        raise GTRError(f"the option {name} must be true or false, got {value!r}")
    return value


def _orbit(fields: dict[str, Any]) -> Any:
    """A request's orbit object as an `Orbit`; a field left out keeps the contract's default."""
    from ..views import Orbit

    names = {"azimuths": "azimuths_deg", "elevation": "elevation_deg", "fov": "fov_deg", "distance": "distance"}
    given = {names[key]: value for key, value in fields.items() if value is not None}
    if "azimuths_deg" in given:
        given["azimuths_deg"] = tuple(given["azimuths_deg"])
    return Orbit(**given)


def load_view_spec(spec: dict[str, Any]) -> Any:
    from ..views import load_views

    orbit = spec.get("orbit")
    return load_views(
        Path(spec["path"]),
        orbit=_orbit(orbit) if orbit else None,
        zero123pp=bool(spec.get("zero123pp")),
    )


def view_warnings(views: Any) -> list[str]:
    """What a reply says about views that load but will not give a good result (sentences for the user)."""
    warning = views.camera_warning()
    return [warning] if warning else []
