import keras
import numpy as np
import pytest

from train.data import DatasetError, check_classes_present, load_image, read_images, scan_dataset


def test_class_order_is_sorted_folder_names(tiny_dataset):
    classes, items = scan_dataset(tiny_dataset)
    assert classes == ["dress", "hat", "t-shirt"]
    assert {i.label for i in items["train"] if i.path.parent.name == "t-shirt"} == {2}
    assert [len(items[s]) for s in ("train", "validation", "test")] == [18, 9, 9]


def test_real_dataset_has_the_ten_classes_in_course_order(shared_data):
    classes, items = scan_dataset(shared_data)
    assert classes == ["dress", "hat", "longsleeve", "outwear", "pants", "shirt", "shoes", "shorts", "skirt", "t-shirt"]
    assert [len(items[s]) for s in ("train", "validation", "test")] == [3068, 341, 372]


def test_missing_split_is_named(tiny_dataset):
    import shutil

    shutil.rmtree(tiny_dataset / "validation")
    with pytest.raises(DatasetError, match="no 'validation' folder"):
        scan_dataset(tiny_dataset)


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError, match="git clone https://github.com/alexeygrigorev/clothing-dataset-small"):
        scan_dataset(tmp_path / "nowhere")


def test_empty_class_is_named(tiny_dataset):
    for f in (tiny_dataset / "test" / "hat").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="class 'hat' has no images in .*test/hat"):
        scan_dataset(tiny_dataset)


def test_classes_differing_between_splits(tiny_dataset):
    (tiny_dataset / "validation" / "hat").rename(tiny_dataset / "validation" / "cap")
    with pytest.raises(DatasetError, match="classes differ between splits.*validation has \\['cap'"):
        scan_dataset(tiny_dataset)


def test_unreadable_file_is_skipped_and_counted(tiny_dataset, caplog):
    bad = tiny_dataset / "train" / "hat" / "hat-0.jpg"
    bad.write_text("this is not a jpeg")
    classes, items = scan_dataset(tiny_dataset)
    images, kept, skipped = read_images(items["train"], 71, "bilinear")
    assert skipped == [bad] and len(kept) == len(images) == 17
    assert str(bad) in caplog.text and "not a readable image" in caplog.text
    check_classes_present(kept, items["train"], classes)  # hat still has 5 images


def test_class_emptied_by_unreadable_files_fails(tiny_dataset):
    for f in (tiny_dataset / "train" / "hat").iterdir():
        f.write_bytes(f.read_bytes()[:100])  # truncated JPEGs
    classes, items = scan_dataset(tiny_dataset)
    _, kept, skipped = read_images(items["train"], 71, "bilinear")
    assert len(skipped) == 6
    with pytest.raises(DatasetError, match="no readable images left in class hat"):
        check_classes_present(kept, items["train"], classes)


def keras_pixels(path, size: int, interpolation: str) -> np.ndarray:
    return keras.utils.img_to_array(keras.utils.load_img(path, target_size=(size, size), interpolation=interpolation))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
def test_loader_matches_keras_load_img(real_images, interpolation):
    """At the backbones' sizes the dataset's 400x533 photos are decoded in full: load_img's pixels exactly."""
    for path in real_images[:3]:
        ours = load_image(path, 299, interpolation)
        assert ours.dtype == np.uint8 and ours.shape == (299, 299, 3)
        np.testing.assert_array_equal(ours.astype(np.float32), keras_pixels(path, 299, interpolation))


def test_a_small_input_reads_the_photo_reduced_and_nearly_as_load_img_does(real_images):
    """At 150 (the quick preset) a 400-pixel side is decoded at 1/2 in the DCT domain (PIXELS_VERSION 4), then
    stretched: within a few levels of load_img's full decode on average."""
    for path in real_images[:3]:
        ours = load_image(path, 150, "bilinear").astype(np.float32)
        assert np.abs(ours - keras_pixels(path, 150, "bilinear")).mean() < 4
