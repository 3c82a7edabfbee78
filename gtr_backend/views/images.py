"""Reading and writing view images: files in, (rgb (3, H, W), mask (1, H, W)) float32 tensors in [0, 1] out.

The mask of a view comes, in this order of preference, from a mask image given for it, from the image's own
alpha channel, or from a background colour the caller names (pixels of that colour are background). A view
with none of these is an error that says how to provide one. A fully opaque alpha channel counts as none.

A mask must separate the object from its background (`mask_problem`), or the reconstruction fills the frame
and scores itself perfect against it: a mask that covers most of the frame's edge (the object seen whole has
background around it; a busy or uneven background keyed by colour is all "object") is refused, and so is a
colour key that leaves the background speckled (a background that is not one plain colour).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..components import component_sizes
from ..errors import ViewError
from ..files import atomic_write, input_problem
from ..pixels import to_uint8

Background = str | tuple[float, float, float] | None
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "white": (1.0, 1.0, 1.0),
    "gray": (0.5, 0.5, 0.5),
    "black": (0.0, 0.0, 0.0),
}
BACKGROUND_TOLERANCE = 4 / 255  # colour distance (max over channels) under which a pixel is background

EDGE_LIMIT = 0.75  # a mask covering more of the frame's edge (its outermost pixels) does not separate anything
SPECK_SIDE = 512  # px: a colour key's specks are counted on the mask at most this size (compression noise fades)
SPECK_SIZE = 1 / 2000  # of the frame: a component of a keyed mask (object or hole) smaller than this is a speck
SPECKLE_LIMIT = 0.02  # of the frame: a colour key whose specks cover more than this leaves a speckled mask
PLAIN_BACKGROUND = (
    "give images with alpha (a transparent background) or a mask image per view, or photograph the object on "
    "a plain background and name its exact colour"
)

HOW_TO_MASK = (
    "give it an alpha channel (RGBA PNG with a transparent background), give a mask image for it "
    "(white = object), or name its background colour (background='white', 'gray', 'black' or an "
    "RGB triple; `--background` on the command line)"
)


MAX_VIEW_SIDE = 2048  # px: larger views are downsampled on load (the model reads 256 or 512, textures 1024)
MIN_VIEW_SIDE = 16  # px: smaller images cannot show an object
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's decompression-bomb limit (about 9459 x 9459)
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # single-channel integer modes, read as 16-bit values


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file as stored, from its header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked by the caller
            with Image.open(path) as image:
                return image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise ViewError(f"{path}: cannot read this image ({error}); use a PNG or JPEG file") from None


def read_image(path: Path, max_side: int | None = MAX_VIEW_SIDE) -> np.ndarray:
    """(H, W, 3 or 4) float32 in [0, 1], any Pillow mode: grey (8- or 16-bit) becomes RGB, palette images keep
    their transparency. Images whose longer side exceeds `max_side` are downsampled on load (area average,
    colour premultiplied by alpha) to that side, so memory stays bounded whatever the file; callers that hold
    intrinsics in pixels scale them by the returned size over `image_size(path)`. Images over `MAX_PIXELS` or
    under `MIN_VIEW_SIDE` a side are refused with a ViewError."""
    problem = input_problem(path, "image file")
    if problem:
        raise ViewError(problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on odd files; `_check_size` has its own size limit
            with Image.open(path) as image:
                width, height = image.size
                _check_size(path, width, height)
                target = _target_size(width, height, max_side)
                if target != (width, height) and image.format == "JPEG":
                    image.draft(image.mode, target)  # decode at 1/2, 1/4 or 1/8 scale where that is enough
                image.load()
                return _to_float(image, target)
    except Image.DecompressionBombError:
        raise ViewError(_too_large(path)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ViewError(f"{path}: cannot read this image ({error}); use a PNG or JPEG file") from None


def _too_large(path: Path, width: int | None = None, height: int | None = None) -> str:
    size = f"{width}x{height}, " if width else ""
    return (
        f"{path}: the image is too large ({size}over {MAX_PIXELS / 1e6:.0f} megapixels); scale it down, "
        f"views are read at {MAX_VIEW_SIDE} px at most"
    )


def _check_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ViewError(_too_large(path, width, height))
    if min(width, height) < MIN_VIEW_SIDE:
        raise ViewError(
            f"{path}: the image is {width}x{height} px; a view needs at least {MIN_VIEW_SIDE} px a side "
            "(the model reads 256 px or more)"
        )


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_float(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """A loaded Pillow image -> (H, W, 3|4) float32 in [0, 1] at `size` (width, height)."""
    if image.mode in _SIXTEEN_BIT or image.mode == "F":
        # Pillow cannot convert these to RGB without clipping to 8 bits (16-bit grey would turn white).
        grey = np.asarray(image, dtype=np.float32)
        if image.mode != "F":
            grey = grey / 65535.0
        grey = np.clip(np.nan_to_num(grey, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        if size != image.size:
            grey = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BOX), dtype=np.float32)
        return np.repeat(grey[..., None], 3, axis=-1)
    has_alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    converted = image.convert("RGBA" if has_alpha else "RGB")
    if converted.size != size:
        converted = converted.resize(size, Image.Resampling.BOX)  # Pillow premultiplies RGBA for this
    return np.asarray(converted, dtype=np.float32) / 255.0


def _background_rgb(background: Background) -> tuple[float, float, float]:
    if isinstance(background, str):
        try:
            return BACKGROUNDS[background]
        except KeyError:
            raise ViewError(
                f"unknown background {background!r}; use one of {', '.join(BACKGROUNDS)} or an RGB triple in [0, 1]"
            ) from None
    assert background is not None
    if len(background) != 3 or not all(0.0 <= float(c) <= 1.0 for c in background):
        raise ViewError(f"background must be an RGB triple in [0, 1], got {background!r}")
    return (float(background[0]), float(background[1]), float(background[2]))


def _background_name(background: Background) -> str:
    if isinstance(background, str):
        return background
    return ",".join(f"{float(c):g}" for c in _background_rgb(background))


def mask_problem(coverage: np.ndarray, background: Background = None) -> str | None:
    """Why a view's mask (H, W) in [0, 1] cannot separate the object from its background, or None when it can.
    `background` names the colour the mask was keyed from (None: an alpha channel or a mask image)."""
    solid = coverage >= 0.5
    edge = float(np.concatenate([solid[0], solid[-1], solid[1:-1, 0], solid[1:-1, -1]]).mean())
    if background is None:
        if edge <= EDGE_LIMIT:
            return None
        return (
            f"the mask covers {edge:.0%} of the frame's edge, so it does not separate the object from its "
            "background (seen whole, an object has background around it); give an alpha channel or a mask image "
            "that is clear around the object"
        )
    keyed = f"with the background colour {_background_name(background)}"
    if edge > EDGE_LIMIT:
        return (
            f"{keyed}, {edge:.0%} of the frame's edge counts as object, so the background cannot be told from the "
            f"object (a busy or uneven background, or another colour); {PLAIN_BACKGROUND}"
        )
    height, width = coverage.shape
    size = _target_size(width, height, SPECK_SIDE)
    if size != (width, height):
        solid = np.asarray(Image.fromarray(coverage.astype(np.float32)).resize(size, Image.Resampling.BOX)) >= 0.5
    sizes = np.concatenate([component_sizes(solid), component_sizes(~solid)])  # specks of object, holes in it
    specks = sizes[sizes < SPECK_SIZE * solid.size]
    if specks.sum() <= SPECKLE_LIMIT * solid.size:
        return None
    return (
        f"{keyed}, the mask is speckled ({len(specks)} specks and pinholes over {specks.sum() / solid.size:.0%} "
        f"of the frame): the background is not one plain colour, or the object has small parts of that colour; "
        + PLAIN_BACKGROUND
    )


def split_rgba(
    array: np.ndarray, where: str, mask: np.ndarray | None = None, background: Background = None
) -> tuple[Tensor, Tensor]:
    """(H, W, 3|4) array -> rgb (3, H, W), mask (1, H, W), with the mask rules of this module (`mask_problem`
    included)."""
    rgb = array[..., :3]
    alpha = array[..., 3] if array.shape[-1] == 4 else None
    keyed: Background = None  # the background colour the mask comes from, if it does
    if alpha is not None and alpha.min() >= 1.0 and mask is None and background is not None:
        alpha = None  # fully opaque: the alpha channel does not separate anything, use the background colour
    if mask is not None:
        if mask.shape != rgb.shape[:2]:
            raise ViewError(
                f"{where}: the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                f"{rgb.shape[1]}x{rgb.shape[0]}; they must be the same size"
            )
        coverage = mask
    elif alpha is not None and alpha.min() < 1.0:
        coverage = alpha
    elif background is not None:
        colour = np.asarray(_background_rgb(background), dtype=np.float32)
        coverage = (np.abs(rgb - colour).max(axis=-1) > BACKGROUND_TOLERANCE).astype(np.float32)
        keyed = background
    elif alpha is not None:
        raise ViewError(
            f"{where}: the alpha channel is fully opaque, so it does not say where the object is; " + HOW_TO_MASK
        )
    else:
        raise ViewError(f"{where}: the image has no alpha channel and no mask was given; " + HOW_TO_MASK)
    problem = mask_problem(coverage, keyed)
    if problem:
        raise ViewError(f"{where}: {problem}")
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    mask_t = torch.from_numpy(np.ascontiguousarray(coverage[None]))
    return rgb_t, mask_t


def read_mask(path: Path, max_side: int | None = MAX_VIEW_SIDE) -> np.ndarray:
    """(H, W) float32 coverage in [0, 1] from a mask image (its alpha if it has one, else its luminance)."""
    array = read_image(path, max_side)
    return array[..., 3] if array.shape[-1] == 4 and array[..., 3].min() < 1.0 else array[..., :3].mean(-1)


def read_view(path: Path, mask_path: Path | None = None, background: Background = None) -> tuple[Tensor, Tensor]:
    """One view image (and optional mask image) -> rgb (3, H, W), mask (1, H, W)."""
    mask = read_mask(mask_path) if mask_path is not None else None
    return split_rgba(read_image(path), str(path), mask, background)


def write_rgba(path: Path, rgb: Tensor, mask: Tensor) -> None:
    """Save rgb (3, H, W) and mask (1, H, W) in [0, 1] as an 8-bit RGBA PNG."""
    rgba = to_uint8(torch.cat([rgb, mask], dim=0))
    image = Image.fromarray(rgba.permute(1, 2, 0).cpu().numpy(), mode="RGBA")
    atomic_write(path, lambda temporary: image.save(temporary, format="PNG"))


def stack_views(views: list[tuple[Tensor, Tensor]], names: list[str]) -> tuple[Tensor, Tensor]:
    """Stack per-view (rgb, mask) into (N, 3, H, W), (N, 1, H, W); views of different sizes are an error."""
    h, w = views[0][0].shape[1:]
    for (rgb, _), name in zip(views, names, strict=True):
        if tuple(rgb.shape[1:]) != (h, w):
            raise ViewError(
                f"{name} is {rgb.shape[2]}x{rgb.shape[1]} but {names[0]} is {w}x{h}: all views of "
                "one set must have the same size"
            )
    return torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views])
