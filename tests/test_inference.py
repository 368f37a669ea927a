"""``load_image`` on everything people upload: each bad file gets a message, each odd one an RGB image."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from flowers_core.serve import answer, decode, predictor
from flowers_core.serve.decode import ImageError, load_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(w=200, h=120, mode="RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    arr[: h // 2, : w // 2] = (255, 0, 0)  # a red top-left quadrant to check orientation
    return Image.fromarray(arr, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(arr, "RGB")


# ------------------------------------------------------------------------------ refused, with a message
@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"this is a text file, not a photo\n" * 10, "not an image"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj", "not an image"),
])
def test_non_images_are_refused_with_a_message(data, words):
    with pytest.raises(ImageError, match=words):
        load_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_are_refused(fmt):
    data = encode(photo(400, 300), fmt)
    with pytest.raises(ImageError, match="damaged or incomplete|not an image"):
        load_image(data[: len(data) // 3])


def test_corrupt_bytes_in_the_middle_are_refused_or_decoded():
    data = bytearray(encode(photo(400, 300), "PNG"))
    data[100:400] = b"\x00" * 300  # breaks the zlib stream / CRC
    with pytest.raises(ImageError):
        load_image(bytes(data))


def test_decompression_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(decode, "MAX_PIXELS", 100 * 100)
    with pytest.raises(ImageError, match="too large"):
        load_image(encode(photo(300, 300), "PNG"))


def test_real_bomb_header_is_refused_without_decoding():
    # a 1-bit PNG claiming 20000×20000 pixels is ~50 KB on disk and 400 megapixels decoded
    big = Image.new("1", (20000, 20000))
    with pytest.raises(ImageError, match="too large"):
        load_image(encode(big, "PNG", optimize=True))


def test_too_many_bytes_are_refused(monkeypatch):
    monkeypatch.setattr(decode, "MAX_BYTES", 1000)
    with pytest.raises(ImageError, match="too large"):
        load_image(encode(photo(), "PNG"))


def test_tiny_images_are_refused():
    with pytest.raises(ImageError, match="too small"):
        load_image(encode(photo(10, 8), "PNG"))


# ------------------------------------------------------------------------------ accepted as RGB
def test_small_images_are_accepted_with_a_warning():
    notes = []
    img = load_image(encode(photo(60, 50), "PNG"), notes)
    assert img.mode == "RGB" and img.size == (60, 50)
    assert any("small" in n for n in notes)


def test_png_with_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (100, 100), (255, 0, 0, 0))  # fully transparent red
    notes = []
    img = load_image(encode(rgba, "PNG"), notes)
    assert img.mode == "RGB" and img.getpixel((50, 50)) == (255, 255, 255)
    assert any("Transparent" in n for n in notes)


def test_palette_png_with_transparency():
    p = photo(100, 100).convert("P")
    img = load_image(encode(p, "PNG", transparency=0))
    assert img.mode == "RGB"


@pytest.mark.parametrize("mode", ["L", "LA", "1"])
def test_greyscale_modes(mode):
    notes = []
    img = load_image(encode(photo(100, 100, mode), "PNG"), notes)
    assert img.mode == "RGB"
    r, g, b = img.split()
    assert np.array_equal(np.asarray(r), np.asarray(g))


def test_16_bit_greyscale_png():
    arr = (np.linspace(0, 65535, 100 * 100).reshape(100, 100)).astype(np.uint16)
    notes = []
    img = load_image(encode(Image.fromarray(arr), "PNG"), notes)
    assert img.mode == "RGB"
    a = np.asarray(img)
    assert a.min() == 0 and a.max() == 255  # full range kept, not clipped to white
    assert any("bit" in n for n in notes)


def test_float_tiff():
    arr = np.random.default_rng(0).random((100, 100)).astype(np.float32)
    img = load_image(encode(Image.fromarray(arr, "F"), "TIFF"))
    assert img.mode == "RGB"


def test_cmyk_jpeg():
    notes = []
    img = load_image(encode(photo(100, 100).convert("CMYK"), "JPEG"), notes)
    assert img.mode == "RGB" and any("CMYK" in n for n in notes)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (100, 100), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    notes = []
    img = load_image(data, notes)
    r, g, b = img.getpixel((50, 50))
    assert r > 200 and b < 50
    assert any("Animated" in n for n in notes)


def test_animated_webp():
    frames = [Image.new("RGB", (100, 100), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
    assert load_image(data).mode == "RGB"


def test_exif_rotated_photo_is_turned_upright():
    img = photo(200, 120)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° CW to display
    data = encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(data)
    assert out.size == (120, 200)  # width and height swapped
    # the red quadrant (top-left as stored) is top-right after a 90° clockwise turn
    a = np.asarray(out).astype(int)
    top_right, top_left = a[5:95, 65:115], a[5:95, 5:55]
    assert top_right[..., 0].mean() > 220 and top_right[..., 1].mean() < 40
    assert top_left[..., 1].mean() > 80  # noise, not the red block


def test_broken_exif_does_not_fail():
    data = bytearray(encode(photo(), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03"))
    img = load_image(bytes(data))
    assert img.mode == "RGB"


def test_webp_and_heic_when_available():
    assert load_image(encode(photo(), "WEBP")).mode == "RGB"
    pytest.importorskip("pillow_heif", reason="pillow-heif not installed: HEIC uploads unsupported")
    assert load_image(encode(photo(), "HEIF")).mode == "RGB"


def test_paths_and_file_objects(tmp_path):
    path = tmp_path / "flower.png"
    path.write_bytes(encode(photo(), "PNG"))
    assert load_image(path).size == (200, 120)
    assert load_image(str(path)).size == (200, 120)
    with path.open("rb") as f:
        assert load_image(f).size == (200, 120)
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.jpg")


def test_a_huge_jpeg_is_decoded_reduced():
    big = photo(4000, 3000)
    img = load_image(encode(big, "JPEG", quality=70))
    assert img.mode == "RGB" and max(img.size) <= 4000 and min(img.size) >= 1024 // 2


# ------------------------------------------------------------------------------ bounded memory, one size limit
def test_too_large_message_names_the_one_limit():
    with pytest.raises(ImageError) as e:
        load_image(b"\x89PNG" + b"\x00" * decode.MAX_BYTES)
    assert f"{decode.MAX_MB} MB" in str(e.value) and f"{decode.MAX_BYTES:,} bytes" in str(e.value)
    assert decode.MAX_BYTES == decode.MAX_MB * 1_000_000


class CountingLock:
    def __init__(self):
        self.entered = 0

    def __enter__(self):
        self.entered += 1

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "1", "I;16"])
def test_large_images_are_decoded_one_at_a_time_and_reduced(monkeypatch, mode):
    lock = CountingLock()
    monkeypatch.setattr(decode, "_LARGE_DECODE", lock)
    monkeypatch.setattr(decode, "LARGE_PIXELS", 10_000)
    monkeypatch.setattr(decode, "REDUCED_SIDE", 50)
    img = photo(400, 230)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(img.convert("L"), dtype=np.uint16) * 257))
    elif mode != "RGB":
        img = img.convert(mode)
    notes = []
    out = load_image(encode(img, "PNG"), notes)
    assert lock.entered == 1
    assert out.mode == "RGB" and out.size == (100, 58)  # factor 230 // 50 = 4 (shorter side >= 50), rounded up
    if mode == "RGB":  # the same picture, averaged: the red quadrant is still red, top-left
        assert np.asarray(out)[5, 5, 0] > 200 and np.asarray(out)[5, 5, 1] < 60


def test_small_and_jpeg_images_skip_the_lock(monkeypatch):
    lock = CountingLock()
    monkeypatch.setattr(decode, "_LARGE_DECODE", lock)
    load_image(encode(photo(400, 300), "PNG"))
    monkeypatch.setattr(decode, "LARGE_PIXELS", 10_000)
    load_image(encode(photo(400, 300), "JPEG"))  # JPEGs are decoded reduced by draft() instead
    assert lock.entered == 0


# ------------------------------------------------------------------------------ several photos of one plant
def test_combine_probs_is_the_normalised_mean_of_log_probabilities():
    a, b = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.6, 0.3])
    out = answer.combine_probs([a, b])
    expected = np.sqrt(a * b) / np.sqrt(a * b).sum()
    assert np.allclose(out, expected, atol=1e-6) and abs(out.sum() - 1) < 1e-6
    assert np.allclose(answer.combine_probs([a]), a, atol=1e-6)


class _Gate:
    threshold = 0.5


def _predictor(threshold=1.0, gate=True):
    p = object.__new__(predictor.Predictor)
    p.classes = ["a", "b", "c", "d"]
    p.threshold = threshold
    p.gate = _Gate() if gate else None
    return p


def test_combine_recomputes_the_verdict():
    p = _predictor(threshold=0.9)
    sure_a = p.describe(np.array([0.9, 0.05, 0.03, 0.02]), 1.0, 0.9)
    sure_b = p.describe(np.array([0.05, 0.9, 0.03, 0.02]), 1.0, 0.9)
    assert sure_a.verdict == sure_b.verdict == "species"
    both = p.combine([sure_a, sure_b])  # two confident photos that disagree: not sure
    assert both.verdict == "not_sure" and both.label in ("a", "b") and both.latency_ms == 2.0
    again = p.combine([sure_a, p.describe(np.array([0.6, 0.2, 0.1, 0.1]), 1.0, 0.9)])
    assert again.verdict == "species" and again.label == "a"
    assert p.combine([sure_a]) is sure_a


def test_combine_uses_the_mean_flower_score():
    p = _predictor(threshold=None)
    flower = p.describe(np.array([0.9, 0.05, 0.03, 0.02]), 1.0, 0.8)
    cat = p.describe(np.array([0.9, 0.05, 0.03, 0.02]), 1.0, 0.1)
    assert p.combine([flower, cat]).flower_score == pytest.approx(0.45)
    assert p.combine([flower, cat]).verdict == "not_a_flower"
    assert p.combine([flower, flower, cat]).verdict == "species"


def test_webp_has_its_own_pixel_limit(monkeypatch):
    monkeypatch.setattr(decode, "FORMAT_MAX_PIXELS", {"WEBP": 100 * 100})
    with pytest.raises(ImageError, match="too large to process safely"):
        load_image(encode(photo(200, 120), "WEBP"))
    assert load_image(encode(photo(200, 120), "PNG")).size == (200, 120)


# ------------------------------------------------------------------------------ one question, what it shows
def test_candidates_leave_out_the_improbable():
    """A "not sure" shows up to three candidates, none the model gives under CANDIDATE_MIN_PROB; the ids and
    the labels agree."""
    p = _predictor(threshold=None)
    spread = p.describe(np.array([0.5, 0.3, 0.15, 0.05 - 1e-6]))
    assert [label for label, _ in spread.candidates()] == ["a", "b", "c"] and spread.candidate_ids() == [0, 1, 2]
    peaked = p.describe(np.array([0.96, 0.03, 0.006, 0.004]))
    assert peaked.candidates() == [("a", pytest.approx(0.96))] and peaked.candidate_ids() == [0]
    flat = p.describe(np.full(4, 0.25))
    assert len(flat.candidates()) == answer.CANDIDATES_SHOWN
    p.classes = [str(i) for i in range(40)]
    nothing = p.describe(np.full(40, 1 / 40))  # 2.5% each: no species is a candidate
    assert nothing.candidates() == [] and nothing.candidate_ids() == []
    assert len(nothing.candidate_ids(min_prob=0.0)) == answer.CANDIDATES_SHOWN, "the benchmark's plain top 3"


def test_photos_disagree_when_one_names_another_species():
    def disagree(preds):
        return bool(answer.agreeing_photos(preds).apart)

    p = _predictor(threshold=0.9, gate=False)
    sure_a = p.describe(np.array([0.9997, 0.0001, 0.0001, 0.0001]))
    sure_b = p.describe(np.array([0.0001, 0.9997, 0.0001, 0.0001]))
    unsure_b = p.describe(np.array([0.3, 0.4, 0.2, 0.1]))
    assert sure_a.verdict == sure_b.verdict == "species" and unsure_b.verdict == "not_sure"
    assert disagree([sure_a, sure_b])
    assert disagree([sure_a, sure_a, sure_b])
    assert not disagree([sure_a, sure_a])
    assert not disagree([sure_a, unsure_b]), "a doubtful photo is combined, not a disagreement"
    assert not disagree([sure_a])


def test_a_different_flower_is_apart_never_outvoted():
    """Sunflower + sunflower + a poppy sent as one plant: the poppy is shown apart, the two sunflowers combined;
    a photo the gate rejects never joins a flower; no two agreeing photos: nothing combined."""
    p = _predictor(threshold=0.9)
    sun = p.describe(np.array([0.9997, 0.0001, 0.0001, 0.0001]), 1.0, 0.9)
    poppy = p.describe(np.array([0.0001, 0.95, 0.0498, 0.0001]), 1.0, 0.9)  # overlap with sun ~0.02
    cat = p.describe(np.array([0.9997, 0.0001, 0.0001, 0.0001]), 1.0, 0.1)
    assert cat.verdict == "not_a_flower"
    assert answer.answer_overlap(sun, poppy) < answer.AGREEMENT_MIN_OVERLAP <= answer.answer_overlap(sun, sun)
    assert answer.agreeing_photos([sun, sun, poppy]) == answer.Agreement([0, 1], [2])
    assert answer.agreeing_photos([poppy, sun, sun]) == answer.Agreement([1, 2], [0]), "the larger group wins"
    assert answer.agreeing_photos([sun, cat]) == answer.Agreement([], [0, 1]), "'not a flower' never joins"
    assert answer.agreeing_photos([cat, cat]).joined == [0, 1]
    assert answer.agreeing_photos([sun, poppy]) == answer.Agreement([], [0, 1])
    assert answer.agreeing_photos([sun]) == answer.Agreement([0], [])
    assert answer.agreeing_photos([sun, poppy], min_overlap=0.0).joined == [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_an_8000_pixel_square_photo_is_reduced_not_refused(fmt):
    """Phones and cameras make 50-64 MP photos: an 8000×8000 image (64 MP) is decoded reduced, not refused."""
    y, x = np.mgrid[0:8000, 0:8000]
    img = Image.fromarray(np.stack([(x // 8 % 256), (y // 8 % 256), ((x + y) // 16 % 256)], -1).astype(np.uint8))
    notes: list[str] = []
    out = load_image(encode(img, fmt, **({"quality": 80} if fmt == "JPEG" else {"compress_level": 1})), notes)
    assert out.mode == "RGB" and min(out.size) >= decode.REDUCED_SIDE and max(out.size) <= 8000 // 2
