"""Tests for the contact sheet PNG."""

import cv2
import numpy as np

from drscreen.data.synthetic.config import SynthConfig
from drscreen.data.synthetic.contact_sheet import LESION_COLOURS, contact_sheet
from drscreen.data.synthetic.generator import generate_fundus


def test_grid_shape_and_outlines(tmp_path):
    """3 images in 2 columns: 2 image rows, each shown plain and outlined, plus a legend;
    outlines of each present lesion type appear in that type's colour."""
    config = SynthConfig(n=3, size=64, seed=1, grade_mix=(0, 0, 0, 1, 0))
    fundi = [generate_fundus(config, i) for i in range(3)]
    path = contact_sheet(fundi, tmp_path / "sub" / "sheet.png", columns=2, tile_size=80)
    sheet = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (4 * 80 + 28, 2 * 80, 3)
    outlined = sheet[80:160, :80]
    for kind, mask in fundi[0].masks.items():
        if mask.any():
            assert np.all(outlined == LESION_COLOURS[kind], axis=-1).any(), kind
