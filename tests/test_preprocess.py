"""Preprocess (resize, centre crop, normalise), image decoding, and stimulus-set resolution, against
hand-computed values."""
import numpy as np
import pytest
from PIL import Image

from visrecur import InputError, Preprocess
from visrecur.recording.images import balanced_indices, to_rgb
from visrecur.recording.reductions import Reduction
from visrecur.recording.stimuli import from_folder, resolve


def normalised(rgb, mean, std):
    return [(v / 255 - m) / s for v, m, s in zip(rgb, mean, std)]


def test_centre_crop_of_a_wide_image_keeps_its_middle():
    # 4 x 12: red | green | blue columns of width 4; a 4 x 4 crop at shorter side 4 keeps green only
    array = np.zeros((4, 12, 3), dtype=np.uint8)
    array[:, :4, 0], array[:, 4:8, 1], array[:, 8:, 2] = 255, 255, 255
    pre = Preprocess((4, 4), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    x = pre(Image.fromarray(array))
    assert x.shape == (3, 4, 4)
    for c, value in enumerate(normalised((0, 255, 0), pre.mean, pre.std)):
        np.testing.assert_allclose(x[c].numpy(), value, rtol=1e-6)


def test_stretch_shows_a_wide_image_whole():
    """fit="stretch" (Brain-Score's default preprocessing: Resize((size, size))): a 4 x 12 red | green |
    blue image becomes 4 x 4 with all three colours, red on the left, blue on the right; the dict says
    so and reads back; the default crop writes what it always wrote."""
    array = np.zeros((4, 12, 3), dtype=np.uint8)
    array[:, :4, 0], array[:, 4:8, 1], array[:, 8:, 2] = 255, 255, 255
    pre = Preprocess((4, 4), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), fit="stretch")
    x = pre(Image.fromarray(array)).numpy()
    assert x.shape == (3, 4, 4)
    high, low = normalised((255, 255, 255), pre.mean, pre.std)[0], normalised((0, 0, 0), pre.mean, pre.std)[0]
    np.testing.assert_allclose(x[0, :, 0], high, rtol=1e-6) and np.testing.assert_allclose(x[2, :, 0], low, rtol=1e-6)
    np.testing.assert_allclose(x[2, :, 3], high, rtol=1e-6) and np.testing.assert_allclose(x[0, :, 3], low, rtol=1e-6)
    assert (x[1, :, 1:3] > low).all()  # green in the middle columns
    assert pre.to_dict()["fit"] == "stretch" and Preprocess.from_dict(pre.to_dict()) == pre
    assert "fit" not in Preprocess((4, 4), (0.5,) * 3, (0.25,) * 3).to_dict()
    assert "nothing is cut" in pre.describe()
    with pytest.raises(InputError, match="preprocessing fit 'pad' must be one of crop, stretch"):
        Preprocess((4, 4), (0.5,) * 3, (0.25,) * 3, fit="pad")


def test_resize_then_non_square_crop():
    # 8 x 8 uniform grey (100) -> crop 2 x 4 with shorter side 2: scaled to cover 2 x 4 (4 x 4), cropped
    pre = Preprocess((2, 4), (0.1, 0.2, 0.3), (0.5, 0.5, 0.5), resize_size=2)
    x = pre(Image.new("RGB", (8, 8), (100, 100, 100)))
    assert x.shape == (3, 2, 4)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), normalised((100,) * 3, pre.mean, pre.std), rtol=1e-5)
    # ImageNet-style: shorter side 256/224 of the crop first, then the crop
    big = Preprocess((224, 224), (0, 0, 0), (1, 1, 1), resize_size=256)
    assert big(Image.new("RGB", (300, 500), (255, 255, 255))).shape == (3, 224, 224)
    assert "shorter side is 256 px" in big.describe() and "centre-cropped to 224x224" in big.describe()


def test_dict_round_trip_and_old_checkpoints():
    pre = Preprocess((32, 32), (0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616))
    assert Preprocess.from_dict(pre.to_dict()) == pre
    assert all(isinstance(v, (list, int, str, bool)) for v in pre.to_dict().values())  # weights_only-safe
    old = {"normalization": {"mean": [0.5] * 3, "std": [0.2] * 3}, "spec": {"input_size": [16, 16]}}
    assert Preprocess.from_checkpoint(old) == Preprocess((16, 16), (0.5,) * 3, (0.2,) * 3)
    assert Preprocess.from_checkpoint({"spec": {"input_size": [16, 16]}}) is None
    with pytest.raises(InputError, match="positive std"):
        Preprocess((8, 8), (0, 0, 0), (1, 0, 1))


def test_sixteen_bit_grey_is_mapped_by_range(tmp_path):
    Image.fromarray(np.array([[0, 257 * 100], [65535, 257 * 3]], dtype=np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.array([[0, 257]], dtype=np.uint16)).save(tmp_path / "dark.png")
    stimuli = from_folder(tmp_path)
    np.testing.assert_array_equal(np.asarray(stimuli.image(1))[..., 0], [[0, 100], [255, 3]])
    # a dark image stays dark (no stretching to its own maximum)
    np.testing.assert_array_equal(np.asarray(stimuli.image(0))[..., 1], [[0, 1]])
    assert (np.asarray(to_rgb(Image.new("L", (2, 2), 7))) == 7).all()


def test_balanced_indices():
    labels = [0] * 5 + [1] * 5 + [2] * 5
    picked = balanced_indices(labels, 8, seed=None)
    assert picked == [0, 1, 2, 5, 6, 7, 10, 11]  # 8 = 2 per class + 1 each to the first two classes
    counts = np.bincount(np.asarray(labels)[balanced_indices(labels, 7, seed=3)])
    assert counts.tolist() == [3, 2, 2]
    assert balanced_indices(labels, 7, seed=3) == balanced_indices(labels, 7, seed=3)
    with pytest.raises(InputError, match="at least one"):
        balanced_indices(labels, 0)


@pytest.mark.parametrize("text,message", [("foo", "not understood"), ("pool", "needs a positive size"),
                                          ("pool:0", "needs a positive size"), ("srp:x", "needs a positive size"),
                                          ("mean:3", "takes no size")])
def test_reduction_parse_errors(text, message):
    with pytest.raises(InputError, match=message):
        Reduction.parse(text)


def test_reduction_parse():
    assert (Reduction.parse("pca:5").method, Reduction.parse("pca:5").size) == ("pca", 5)
    assert Reduction.parse(None).method == "none"


@pytest.fixture
def image_tree(tmp_path):
    for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / "test" / cls).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (8, 8), colour).save(tmp_path / "test" / cls / f"{k}.png")
    return tmp_path


def test_resolve_every_source(image_tree, tmp_path):
    assert resolve("builtin").name == "builtin" and len(resolve("builtin", limit=5)) == 5
    cifar = resolve(f"cifar10-test:{image_tree}", limit=3)
    assert cifar.metadata.label.tolist() == ["cat", "cat", "dog"]  # balanced: 2 + 1, the first of each
    folder = resolve(str(image_tree / "test"))
    assert folder.ids == [f"{c}/{k}.png" for c in ("cat", "dog") for k in range(3)]
    single = resolve(str(image_tree / "test" / "dog" / "1.png"))
    assert single.ids == ["1.png"] and np.asarray(single.image(0))[0, 0].tolist() == [0, 0, 255]
    files = resolve([str(image_tree / "test" / "cat" / "0.png"), str(image_tree / "test" / "dog" / "0.png")])
    assert len(files) == 2 and files.ids[0] != files.ids[1]
    np.save(tmp_path / "arr.npy", np.zeros((4, 6, 6, 3), dtype=np.uint8))
    assert len(resolve(str(tmp_path / "arr.npy"))) == 4
    (tmp_path / "list.txt").write_text("test/dog/2.png\n\ntest/cat/1.png\n")
    listed = resolve(str(tmp_path / "list.txt"))
    assert listed.name == "list" and listed.metadata.file.tolist() == [str(tmp_path / "test/dog/2.png"),
                                                                         str(tmp_path / "test/cat/1.png")]
    for missing, message in ((tmp_path / "no.txt", "stimulus list .* does not exist"),
                             (tmp_path / "no.npy", "stimulus array .* does not exist"),
                             (tmp_path / "nothing", "does not exist"),
                             ("nothing", "not understood"),
                             (f"92images:{tmp_path / 'no.mat'}", "92-image set was not found")):
        with pytest.raises(InputError, match=message):
            resolve(str(missing))
