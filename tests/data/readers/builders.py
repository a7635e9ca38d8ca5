"""Fixture builders: tiny files in each dataset's exact layout and naming under ``tmp_path``."""

from pathlib import Path

import cv2
import numpy as np


def write_image(path: Path, level: int = 128, grey: bool = False) -> Path:
    """Write a uniform 8x8 image: colour for photographs, ``grey`` for masks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (8, 8) if grey else (8, 8, 3)
    if not cv2.imwrite(str(path), np.full(shape, level, np.uint8)):
        raise OSError(f"could not write {path}")
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def build_kaggle(
    root: Path,
    train_csv: str,
    train_images: list[str],
    test_csv: str | None = None,
    test_images: tuple[str, ...] = (),
) -> Path:
    """``trainLabels.csv`` + ``train/<image>.jpeg`` (+ ``retinopathy_solution.csv``, ``test/``)."""
    write_text(root / "trainLabels.csv", train_csv)
    for image in train_images:
        write_image(root / "train" / f"{image}.jpeg")
    if test_csv is not None:
        write_text(root / "retinopathy_solution.csv", test_csv)
    for image in test_images:
        write_image(root / "test" / f"{image}.jpeg")
    return root


def build_synthetic(
    root: Path,
    train_csv: str,
    images: list[str],
    lesion_types: tuple[str, ...],
    masks_for: list[str],
) -> Path:
    """Kaggle train layout + ``masks/<lesion_type>/<image>.png``, lesions.csv, synth.json."""
    build_kaggle(root, train_csv, images)
    for image in masks_for:
        for lesion in lesion_types:
            write_image(root / "masks" / lesion / f"{image}.png", 0, grey=True)
    write_text(root / "lesions.csv", "image,lesion_type,x,y,radius\n")
    write_text(root / "synth.json", "{}\n")
    return root


def build_aptos(root: Path, train_csv: str, images: list[str]) -> Path:
    """``train.csv`` (``id_code,diagnosis``) + ``train_images/<id_code>.png``."""
    write_text(root / "train.csv", train_csv)
    for image in images:
        write_image(root / "train_images" / f"{image}.png")
    return root


def build_messidor2(root: Path, grades_csv: str, images: list[str], pairs_csv: str | None) -> Path:
    """``messidor_data.csv`` + ``IMAGES/<image_id>`` (+ ``messidor-2.csv``, ``;``-separated)."""
    write_text(root / "messidor_data.csv", grades_csv)
    for image in images:
        write_image(root / "IMAGES" / image)
    if pairs_csv is not None:
        write_text(root / "messidor-2.csv", pairs_csv)
    return root


IDRID_TRAIN_LABELS = (
    "B. Disease Grading/2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv"
)
IDRID_TEST_LABELS = "B. Disease Grading/2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv"
IDRID_MASK_FOLDERS = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
    "OD": "5. Optic Disc",
}


def build_idrid(
    root: Path,
    train_csv: str,
    train_images: list[str],
    test_csv: str | None,
    test_images: list[str],
    segmentation: dict[str, dict[str, list[str]]],
) -> Path:
    """IDRiD's two parts in their original folder names.

    ``segmentation`` maps a set (``"a. Training Set"``) to image stem -> mask suffixes.
    """
    write_text(root / IDRID_TRAIN_LABELS, train_csv)
    grading_images = root / "B. Disease Grading" / "1. Original Images"
    for name in train_images:
        write_image(grading_images / "a. Training Set" / f"{name}.jpg")
    if test_csv is not None:
        write_text(root / IDRID_TEST_LABELS, test_csv)
    for name in test_images:
        write_image(grading_images / "b. Testing Set" / f"{name}.jpg")
    for folder, images in segmentation.items():
        for stem, suffixes in images.items():
            write_image(root / "A. Segmentation" / "1. Original Images" / folder / f"{stem}.jpg")
            masks = root / "A. Segmentation" / "2. All Segmentation Groundtruths" / folder
            for suffix in suffixes:
                write_image(
                    masks / IDRID_MASK_FOLDERS[suffix] / f"{stem}_{suffix}.tif", 76, grey=True
                )
    return root


DIARETDB1_FOLDERS = ("hardexudates", "hemorrhages", "redsmalldots", "softexudates")


def build_diaretdb1(
    root: Path, images: list[str], maps_for: list[str], trainset: str | None, testset: str | None
) -> Path:
    """``resources/images/ddb1_fundusimages`` + ``ddb1_groundtruth/<type>/`` (+ split files)."""
    for name in images:
        write_image(root / "resources/images/ddb1_fundusimages" / name)
    for name in maps_for:
        for folder in DIARETDB1_FOLDERS:
            write_image(root / "resources/images/ddb1_groundtruth" / folder / name, 0, grey=True)
    if trainset is not None:
        write_text(root / "resources/traindatasets/trainset.txt", trainset)
    if testset is not None:
        write_text(root / "resources/testdatasets/testset.txt", testset)
    return root
