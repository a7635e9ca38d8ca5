"""The lesion vocabulary shared by the synthetic benchmark, the readers and evaluation."""

MICROANEURYSM = "microaneurysm"
HEMORRHAGE = "hemorrhage"
HARD_EXUDATE = "hard_exudate"
SOFT_EXUDATE = "soft_exudate"  # cotton-wool spot
NEOVASCULARISATION = "neovascularisation"

LESION_TYPES = (MICROANEURYSM, HEMORRHAGE, HARD_EXUDATE, SOFT_EXUDATE, NEOVASCULARISATION)
RED_LESIONS = (MICROANEURYSM, HEMORRHAGE, NEOVASCULARISATION)
BRIGHT_LESIONS = (HARD_EXUDATE, SOFT_EXUDATE)

REFERABLE_GRADE = 2  # moderate NPDR or worse (International Clinical DR scale)
NUM_GRADES = 5
