"""The synthetic benchmark's configuration: a frozen dataclass with difficulty presets.

A `difficulty` name (``easy``, ``standard``, ``hard``; ``screening`` is ``standard`` with
ungradable photographs mixed in) resolves into explicit numbers (`Difficulty`) so that the
configuration written next to a dataset states everything that shaped it. Owns validation
of every knob; must not generate pixels.
"""

import dataclasses
import math
from collections.abc import Sequence

DEFAULT_GRADE_MIX = (0.40, 0.15, 0.25, 0.10, 0.10)
MIN_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Difficulty:
    """The numbers a difficulty preset stands for.

    Sizes are in pixels of a 512 px image and scale with the image size.

    Attributes
    ----------
    lesion_size:
        Multiplier on lesion radii (microaneurysms are about 1-2.5 px at 1.0).
    lesion_contrast:
        Multiplier on how strongly a lesion changes the retina's colour.
    lesion_count:
        Multiplier on the number of lesions a grade calls for.
    distractor_rate:
        Multiplier on the number of dust spots, reflexes, drusen and pigment spots.
    blur_max:
        Largest Gaussian defocus sigma (px at 512).
    noise_max:
        Largest sensor-noise standard deviation (0-255 units).
    jpeg_quality:
        (lowest, highest) JPEG quality drawn per image.
    illumination_unevenness:
        Amplitude of the low-frequency illumination field (0 = flat).
    poor_quality_probability:
        Chance that an image is hazy (cataract), under-exposed or out of focus.
    rotation_max_deg:
        Largest absolute camera rotation in degrees.
    ungradable_fraction:
        Share of images made ungradable (`drscreen.data.synthetic.ungradable`: heavy blur,
        bad exposure, small pupil, eyelid, cut field of view, dense haze, not a fundus);
        0 in the grading presets, so their datasets have no ungradable image.
    """

    lesion_size: float
    lesion_contrast: float
    lesion_count: float
    distractor_rate: float
    blur_max: float
    noise_max: float
    jpeg_quality: tuple[int, int]
    illumination_unevenness: float
    poor_quality_probability: float
    rotation_max_deg: float
    ungradable_fraction: float = 0.0

    def __post_init__(self):
        for name in ("lesion_size", "lesion_contrast", "lesion_count"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Difficulty.{name} must be > 0, got {getattr(self, name)}")
        for name in ("distractor_rate", "blur_max", "noise_max", "illumination_unevenness"):
            if getattr(self, name) < 0:
                raise ValueError(f"Difficulty.{name} must be >= 0, got {getattr(self, name)}")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(
                f"Difficulty.jpeg_quality must be 1 <= low <= high <= 100, got {self.jpeg_quality}"
            )
        for name in ("poor_quality_probability", "ungradable_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"Difficulty.{name} must be in [0, 1], got {getattr(self, name)}")


DIFFICULTIES = {
    "easy": Difficulty(
        lesion_size=1.5,
        lesion_contrast=1.5,
        lesion_count=1.5,
        distractor_rate=0.3,
        blur_max=0.5,
        noise_max=2.0,
        jpeg_quality=(90, 97),
        illumination_unevenness=0.12,
        poor_quality_probability=0.0,
        rotation_max_deg=5.0,
    ),
    "standard": Difficulty(
        lesion_size=1.0,
        lesion_contrast=1.0,
        lesion_count=1.0,
        distractor_rate=1.0,
        blur_max=1.5,
        noise_max=4.0,
        jpeg_quality=(70, 95),
        illumination_unevenness=0.25,
        poor_quality_probability=0.1,
        rotation_max_deg=12.0,
    ),
    "hard": Difficulty(
        lesion_size=0.8,
        lesion_contrast=0.7,
        lesion_count=0.7,
        distractor_rate=1.8,
        blur_max=2.5,
        noise_max=7.0,
        jpeg_quality=(50, 90),
        illumination_unevenness=0.4,
        poor_quality_probability=0.25,
        rotation_max_deg=20.0,
    ),
}
DIFFICULTIES["screening"] = dataclasses.replace(DIFFICULTIES["standard"], ungradable_fraction=0.2)
"""A screening programme's day: the standard photographs, one in five of them ungradable."""


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic fundus dataset, byte for byte.

    Attributes
    ----------
    n:
        Number of images; patients are ``ceil(n / 2)`` (left eye, then right eye).
    size:
        Side of the square photographs in pixels (at least 64).
    seed:
        Root seed; image ``i`` draws from ``SeedSequence([seed, i])``.
    difficulty:
        Name of the preset the `params` came from (``easy``, ``standard``, ``hard``,
        ``screening``).
    params:
        The preset's numbers; ``None`` resolves to ``DIFFICULTIES[difficulty]``.
    grade_mix:
        Probability of ICDR grades 0-4 for each eye (normalised).
    pair_correlation:
        Probability that a patient's second eye copies the first eye's grade; otherwise it is
        drawn independently from `grade_mix`, which keeps each eye's marginal at `grade_mix`.
    notch_probability:
        Chance that the field of view shows the camera's orientation notch.
    """

    n: int = 1000
    size: int = 512
    seed: int = 0
    difficulty: str = "standard"
    params: Difficulty | None = None
    grade_mix: tuple[float, ...] = DEFAULT_GRADE_MIX
    pair_correlation: float = 0.6
    notch_probability: float = 0.3

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n <= 0:
            raise ValueError(f"SynthConfig.n must be a positive integer, got {self.n!r}")
        if not isinstance(self.size, int) or self.size < MIN_SIZE:
            raise ValueError(
                f"SynthConfig.size must be an integer >= {MIN_SIZE}, got {self.size!r}"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"SynthConfig.seed must be a non-negative integer, got {self.seed!r}")
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(
                f"SynthConfig.difficulty {self.difficulty!r} is not one of {sorted(DIFFICULTIES)}"
            )
        if self.params is None:
            object.__setattr__(self, "params", DIFFICULTIES[self.difficulty])
        object.__setattr__(self, "grade_mix", _normalised_mix(self.grade_mix))
        for name in ("pair_correlation", "notch_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SynthConfig.{name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def num_patients(self) -> int:
        return math.ceil(self.n / 2)

    @classmethod
    def from_preset(cls, difficulty: str = "standard", **overrides) -> "SynthConfig":
        """Builds a config from a preset, overriding any `SynthConfig` or `Difficulty` field.

        Example: ``SynthConfig.from_preset("hard", n=200, size=256, blur_max=0.0)``.
        """
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty {difficulty!r} is not one of {sorted(DIFFICULTIES)}")
        difficulty_fields = {f.name for f in dataclasses.fields(Difficulty)}
        config_fields = {f.name for f in dataclasses.fields(cls)} - {"params", "difficulty"}
        unknown = set(overrides) - difficulty_fields - config_fields
        if unknown:
            raise ValueError(f"unknown SynthConfig/Difficulty fields: {sorted(unknown)}")
        params = dataclasses.replace(
            DIFFICULTIES[difficulty],
            **{k: v for k, v in overrides.items() if k in difficulty_fields},
        )
        return cls(
            difficulty=difficulty,
            params=params,
            **{k: v for k, v in overrides.items() if k in config_fields},
        )

    def to_dict(self) -> dict:
        """The resolved configuration as JSON-ready values.

        ``params.ungradable_fraction`` appears only when it is not 0, so a dataset without
        ungradable images is described exactly as before the option existed.
        """
        values = dataclasses.asdict(self)
        if not self.params.ungradable_fraction:
            del values["params"]["ungradable_fraction"]
        return values


def _normalised_mix(mix: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(v) for v in mix)
    if len(values) != 5 or any(v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(
            f"SynthConfig.grade_mix must be 5 non-negative weights for grades "
            f"0-4 with a positive sum, got {mix!r}"
        )
    total = sum(values)
    return tuple(v / total for v in values)
