"""Upload bytes -> a safe, upright 8-bit RGB image, or an ``ImageError`` whose message is meant for a person.

Users upload anything: corrupt files, text, SVG, huge, tiny, transparent, CMYK, 16-bit or EXIF-rotated photos.
``load_image`` turns every supported file into an upright RGB image with bounded memory, and never raises a
traceback at a visitor.
"""
from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# The one upload size limit, in bytes, as people count them (1 MB = 1,000,000 bytes, like browsers and
# phones). The app's `.streamlit/config.toml` sets its uploader's transport cap well above this
# (server.maxUploadSize, in MiB) so that this module's message is what a visitor reads;
# tests/test_page_classify.py checks that the two agree.
MAX_MB = 30
MAX_BYTES = MAX_MB * 1_000_000  # larger than any phone photo
# Decompression-bomb guard for the formats decoded at full size (PNG, TIFF, HEIC…): 70 megapixels takes an
# 8000×8000 image (64 MP) and today's 50-64 MP phone and camera files; one decodes to ~210 MB as RGB (~280 MB
# RGBA), one at a time (the lock below), then is reduced. A JPEG is decoded reduced (``draft``: at most
# 1/8 of each side) so it costs a fraction of that: FORMAT_MAX_PIXELS lets JPEGs go up to 200 MP (the
# largest phone sensors), which draft-decode to ~3 MP.
MAX_PIXELS = 70_000_000
# Bounded memory for large accepted images: a JPEG is decoded reduced (``draft``); any other format above
# LARGE_PIXELS is decoded one at a time (the lock) and reduced right away, before the RGB conversions copy
# it, so several visitors' huge PNGs never hold more than one full-size decode in memory at once
# (`python -m tools.decode_memory` measures it: 4 near-limit files at once, bounded vs not).
LARGE_PIXELS = 16_000_000
REDUCED_SIDE = 1024  # the reduced image keeps at least this many pixels on its shorter side
# Formats whose decoder holds several full-size copies: Pillow's WebP decoder peaks at ~16 bytes a pixel
# (~950 MB at 60 MP, against ~240-470 MB for a PNG), so WebP gets a lower pixel limit (phones save 12-50 MP).
FORMAT_MAX_PIXELS = {"WEBP": 25_000_000, "JPEG": 200_000_000, "MPO": 200_000_000}
_LARGE_DECODE = threading.Lock()
MIN_SIDE = 16  # below this there is nothing to classify
SMALL_SIDE = 96  # below this we warn that the result is unreliable

try:  # HEIC/HEIF from phones, when the optional plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional
    pass


class ImageError(ValueError):
    """The upload cannot be classified; ``str(e)`` is a message for the person who uploaded it."""


def load_image(source: bytes | str | Path | BinaryIO, notes: list[str] | None = None) -> Image.Image:
    """Decode an upload into an upright RGB image; append human-readable remarks to ``notes``."""
    notes = notes if notes is not None else []
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"File not found: {path}")
        if path.stat().st_size > MAX_BYTES:
            raise ImageError(too_large_message(path.stat().st_size))
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read(MAX_BYTES + 1)
    if len(data) == 0:
        raise ImageError("The file is empty (0 bytes).")
    if len(data) > MAX_BYTES:
        raise ImageError(too_large_message(len(data)))

    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max(MAX_PIXELS, *FORMAT_MAX_PIXELS.values())  # each format's own bound below
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            limit = FORMAT_MAX_PIXELS.get(img.format, MAX_PIXELS)
            if img.width * img.height > limit:
                raise ImageError(f"This image is too large to process safely ({img.width}×{img.height} pixels; "
                                 f"the limit is {limit // 1_000_000} megapixels for {img.format}). "
                                 "Please upload it smaller, or as a JPEG.")
            if getattr(img, "n_frames", 1) > 1:
                if img.format != "MPO":  # phone JPEGs with a depth/preview frame are not animations
                    notes.append(f"Animated image: the first of {img.n_frames} frames was used.")
                img.seek(0)
            if img.format == "JPEG":  # decode a reduced JPEG directly: faster and lighter for big photos
                img.draft("RGB", (REDUCED_SIDE, REDUCED_SIDE))
            if img.width * img.height > LARGE_PIXELS and img.format != "JPEG":
                with _LARGE_DECODE:
                    img.load()
                    img = reduced(img)
            else:
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"The image is too large to process safely (limit {MAX_PIXELS // 1_000_000} "
                         "megapixels).") from None
    except UnidentifiedImageError:
        raise ImageError("This file is not an image we can read. Please upload a JPEG, PNG, WebP or HEIC photo.") from None
    except ImageError:
        raise
    except Exception as e:  # OSError, SyntaxError, struct.error, EOFError…: malformed files break decoders in many ways
        # the message is for the visitor; the decoder's own words stay in the exception chain, for developers
        raise ImageError("The image file is damaged or incomplete and cannot be opened (it may have been cut off while "
                         "copying or uploading). Please try the original photo again.") from e
    finally:
        Image.MAX_IMAGE_PIXELS = previous

    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF: keep the pixels as stored
        notes.append("The photo's orientation tag could not be read; the image is used as stored.")
    try:
        img = to_rgb(img, notes)
    except Exception as e:  # exotic modes (LAB, HSV, multi-band TIFF) PIL cannot convert
        raise ImageError(f"This image's colour format ({img.mode}) is not supported; please upload a normal "
                         f"RGB photo ({type(e).__name__}).") from None
    if min(img.size) < MIN_SIDE:
        raise ImageError(f"The image is too small to classify ({img.width}×{img.height} px); please upload a larger photo "
                         f"(at least {SMALL_SIDE} px per side gives a reliable answer).")
    if min(img.size) < SMALL_SIDE:
        notes.append(f"The image is very small ({img.width}×{img.height} px); the result may be unreliable.")
    return img


def size_limit_text() -> str:
    """The one upload limit as every message and help text says it."""
    return f"{MAX_MB} MB ({MAX_BYTES:,} bytes)"


def too_large_message(size: int) -> str:
    megabytes = -(-size // 100_000) / 10  # rounded up, so a file just over the limit never reads as "30.0 MB"
    return (f"The file is too large ({megabytes:.1f} MB, {size:,} bytes); the limit is {size_limit_text()}. "
            "Please upload a smaller photo (a phone photo is usually 2–12 MB).")


def reduced(img: Image.Image, side: int | None = None) -> Image.Image:
    """A decoded image shrunk by an integer factor (box filter, one pass) so that its
    shorter side stays at least ``side``; the modes ``Image.reduce`` cannot average become their nearest
    averageable mode first (what ``to_rgb`` would make of them anyway)."""
    factor = min(img.size) // (side or REDUCED_SIDE)
    if factor < 2:
        return img
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    elif img.mode.startswith("I;16"):  # reduce() refuses 16-bit; a box resize is the same average, no 32-bit copy
        return img.resize((-(-img.width // factor), -(-img.height // factor)), Image.BOX)  # as reduce() rounds
    try:
        return img.reduce(factor)
    except ValueError:  # an exotic mode: keep the full-size image (still decoded one at a time)
        return img


def to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    """Any PIL mode -> 8-bit RGB; transparency is composited on white (how people see a PNG)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
        notes.append("High bit-depth image converted to 8 bits.")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
        notes.append("Transparent areas were filled with white.")
    if img.mode == "CMYK":
        notes.append("CMYK image converted to RGB.")
    elif img.mode == "L":
        notes.append("Greyscale image: colour is an important cue for flowers, so confidence may be lower.")
    return img.convert("RGB")

