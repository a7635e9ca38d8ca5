"""Synthetic colour fundus photographs with known lesions, pixel by pixel.

A reproducible diabetic-retinopathy benchmark: photographs with ICDR grades, patient pairs,
one mask per lesion type and a lesion table, written in the Kaggle DR 2015 layout.
"""

from drscreen.data.synthetic.config import DIFFICULTIES, Difficulty, SynthConfig
from drscreen.data.synthetic.contact_sheet import contact_sheet
from drscreen.data.synthetic.generator import LesionRow, SyntheticFundus, generate_fundus
from drscreen.data.synthetic.writer import write_dataset

__all__ = [
    "DIFFICULTIES",
    "Difficulty",
    "LesionRow",
    "SynthConfig",
    "SyntheticFundus",
    "contact_sheet",
    "generate_fundus",
    "write_dataset",
]
