"""Every PIL mode decodes to the RGB values the rule in ``visrecur.recording.images`` states, computed here
by hand from the stored values, or is refused in one line; images past the pixel limit are refused before
they are decoded."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visrecur.errors import InputError
from visrecur.recording import images
from visrecur.recording.images import check_image, load_rgb, to_rgb

GREY = 128


def _rgb(path_or_image):
    decoded = load_rgb(path_or_image) if not isinstance(path_or_image, Image.Image) else to_rgb(path_or_image)
    assert decoded.mode == "RGB"
    return np.asarray(decoded).astype(int)


def _saved(tmp_path, image, suffix):
    path = tmp_path / f"image{suffix}"
    image.save(path)
    return path


def test_1bit_is_black_or_white(tmp_path):
    image = Image.fromarray(np.array([[0, 255, 0]], dtype=np.uint8)).convert("1")
    assert _rgb(_saved(tmp_path, image, ".png"))[0].tolist() == [[0, 0, 0], [255, 255, 255], [0, 0, 0]]


def test_grey_is_repeated(tmp_path):
    image = Image.fromarray(np.array([[0, 17, 255]], dtype=np.uint8), "L")
    assert _rgb(_saved(tmp_path, image, ".png"))[0].tolist() == [[0] * 3, [17] * 3, [255] * 3]


def test_grey_alpha_composited_over_mid_grey(tmp_path):
    # value 200 at alpha 0, 255 and 51: 128, 200, 0.2 * 200 + 0.8 * 128 = 142.4
    data = np.array([[[200, 0], [200, 255], [200, 51]]], dtype=np.uint8)
    got = _rgb(_saved(tmp_path, Image.fromarray(data, "LA"), ".png"))[0, :, 0]
    assert got[0] == GREY and got[1] == 200 and abs(got[2] - 142.4) <= 1


def test_rgba_composited_over_mid_grey(tmp_path):
    data = np.array([[[255, 0, 10, 0], [255, 0, 10, 255], [255, 0, 10, 128]]], dtype=np.uint8)
    got = _rgb(_saved(tmp_path, Image.fromarray(data, "RGBA"), ".png"))[0]
    a = 128 / 255
    expected = [[GREY] * 3, [255, 0, 10], [a * 255 + (1 - a) * GREY, (1 - a) * GREY, a * 10 + (1 - a) * GREY]]
    assert np.abs(got - np.array(expected)).max() <= 1


def test_premultiplied_alpha_modes():
    # RGBa stores colour * alpha: (50, 100, 0) at alpha 128 is the colour (99.6, 199.2, 0)
    image = Image.frombytes("RGBa", (1, 1), bytes([50, 100, 0, 128]))
    a = 128 / 255
    expected = [a * 99.6 + (1 - a) * GREY, a * 199.2 + (1 - a) * GREY, (1 - a) * GREY]
    assert np.abs(_rgb(image)[0, 0] - expected).max() <= 1.5
    grey = Image.frombytes("La", (1, 1), bytes([50, 128]))
    assert np.abs(_rgb(grey)[0, 0] - (a * 99.6 + (1 - a) * GREY)).max() <= 1.5


def test_palette_with_and_without_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    image.putdata([0, 1])
    assert _rgb(_saved(tmp_path, image, ".png"))[0].tolist() == [[10, 20, 30], [200, 100, 0]]
    image.info["transparency"] = 1  # the second colour fully transparent: mid-grey
    path = tmp_path / "t.png"
    image.save(path, transparency=1)
    assert _rgb(path)[0].tolist() == [[10, 20, 30], [GREY] * 3]


def test_rgb_and_rgbx_unchanged(tmp_path):
    data = np.array([[[1, 2, 3], [250, 128, 0]]], dtype=np.uint8)
    assert _rgb(_saved(tmp_path, Image.fromarray(data, "RGB"), ".png")).tolist() == data.tolist()
    assert _rgb(Image.fromarray(data, "RGB").convert("RGBX")).tolist() == data.tolist()


def test_16bit_by_the_full_16bit_range(tmp_path):
    values = np.array([[0, 257, 32896, 65535, 1000]], dtype=np.uint16)
    expected = [0, 1, 128, 255, round(1000 / 257)]
    for image in (Image.fromarray(values), Image.fromarray(values).convert("I")):
        assert _rgb(_saved(tmp_path, image, ".tif"))[0, :, 0].tolist() == expected, image.mode
    for mode, dtype in (("I;16B", ">u2"), ("I;16L", "<u2")):
        image = Image.frombytes(mode, (5, 1), values.astype(dtype).tobytes())
        assert _rgb(image)[0, :, 0].tolist() == expected, mode


def test_32bit_integers_outside_16_bits_refused(tmp_path):
    path = _saved(tmp_path, Image.fromarray(np.array([[0, 70000]], dtype=np.int32), "I"), ".tif")
    with pytest.raises(InputError, match="outside the 16-bit range"):
        load_rgb(path)
    with pytest.raises(InputError, match="outside the 16-bit range"):
        check_image(path)  # found before any work


def test_float_0_to_1_times_255(tmp_path):
    """The issue's case: a float TIFF of 0..1 used to decode as all black."""
    values = np.array([[0.0, 0.5, 1.0, 0.2]], dtype=np.float32)
    got = _rgb(_saved(tmp_path, Image.fromarray(values, "F"), ".tif"))[0, :, 0]
    assert got.tolist() == [0, 128, 255, 51]  # round(0.5 * 255) = 128 (127.5 rounds to even: 128)


@pytest.mark.parametrize("values,fragment", [([[0.0, 2.0]], "values 0..2"), ([[-0.5, 0.5]], "values -0.5..0.5"),
                                             ([[np.nan, 0.5]], "NaN"), ([[np.inf, 0.5]], "NaN or infinite")])
def test_float_outside_0_to_1_refused(tmp_path, values, fragment):
    path = _saved(tmp_path, Image.fromarray(np.array(values, dtype=np.float32), "F"), ".tif")
    for call in (load_rgb, check_image):
        with pytest.raises(InputError, match=fragment.replace(".", r"\.")) as raised:
            call(path)
        assert "\n" not in str(raised.value)


def test_cmyk_by_its_formula(tmp_path):
    data = np.array([[[10, 200, 30, 40], [0, 0, 0, 0], [255, 0, 0, 255]]], dtype=np.uint8)
    expected = [[round((255 - c) * (255 - k) / 255) for c in px[:3]] for px in data[0].astype(int) for k in [px[3]]]
    assert _rgb(_saved(tmp_path, Image.fromarray(data, "CMYK"), ".tif"))[0].tolist() == expected


def test_ycbcr_by_the_jfif_formula():
    data = np.array([[[100, 90, 200], [128, 128, 128], [255, 0, 255]]], dtype=np.uint8)
    expected = []
    for y, cb, cr in data[0].astype(float):
        rgb = [y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)]
        expected.append([int(np.clip(round(v), 0, 255)) for v in rgb])
    assert expected[0] == [201, 62, 33] and expected[1] == [128, 128, 128]
    assert _rgb(Image.fromarray(data, "YCbCr"))[0].tolist() == expected


@pytest.mark.parametrize("mode", ["HSV", "LAB"])
def test_other_modes_refused(mode):
    try:
        image = Image.new(mode, (2, 2))
    except ValueError:
        pytest.skip(f"this PIL cannot make {mode} images")
    with pytest.raises(InputError, match=f"mode '{mode}'"):
        to_rgb(image, "x.tif")


def test_over_the_pixel_limit_refused_alone_and_in_a_folder(tmp_path, monkeypatch):
    from visrecur.recording.stimuli import resolve

    Image.new("L", (40, 30)).save(tmp_path / "a.png")
    Image.new("L", (10, 10)).save(tmp_path / "b.png")
    monkeypatch.setenv("VISRECUR_MAX_IMAGE_PIXELS", "1199")
    for call in (lambda: load_rgb(tmp_path / "a.png"), lambda: check_image(tmp_path / "a.png"),
                 lambda: resolve([str(tmp_path)]).check_files()):
        with pytest.raises(InputError, match="1200 pixels, more than the limit of 1199.*--max-image-pixels 1200"):
            call()
    monkeypatch.setenv("VISRECUR_MAX_IMAGE_PIXELS", "1200")  # the limit itself is allowed
    assert load_rgb(tmp_path / "a.png").size == (40, 30)
    monkeypatch.setenv("VISRECUR_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(InputError, match="VISRECUR_MAX_IMAGE_PIXELS='lots'"):
        load_rgb(tmp_path / "b.png")


def test_past_pils_own_bomb_limit_refused_not_a_traceback(tmp_path, monkeypatch):
    """PIL raises DecompressionBombError past twice its limit; visrecur's own check answers first, and a
    raised limit lets the image through although PIL's stays where it was."""
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(images, "DEFAULT_MAX_PIXELS", 1000)
    with pytest.raises(InputError, match="10000 pixels"):
        load_rgb(tmp_path / "big.png")
    images.set_max_image_pixels(10000)
    try:
        assert load_rgb(tmp_path / "big.png").size == (100, 100)
    finally:
        images.set_max_image_pixels(None)
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(InputError, match="whole number"):
        images.set_max_image_pixels(0)
