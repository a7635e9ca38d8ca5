"""Tests for the synthetic benchmark's configuration and difficulty presets."""

import dataclasses

import pytest

from drscreen.data.synthetic.config import DIFFICULTIES, SynthConfig


def test_difficulty_resolves_to_the_preset_numbers():
    """A bare difficulty name resolves into that preset's explicit numbers."""
    for name, params in DIFFICULTIES.items():
        assert SynthConfig(difficulty=name).params == params
    assert SynthConfig().difficulty == "standard"


def test_presets_order_from_easy_to_hard():
    """Harder presets have smaller, fainter lesions, more distractors and worse images."""
    easy, standard, hard = (DIFFICULTIES[name] for name in ("easy", "standard", "hard"))
    for field in ("lesion_size", "lesion_contrast", "lesion_count"):
        assert getattr(easy, field) > getattr(standard, field) > getattr(hard, field)
    for field in ("distractor_rate", "blur_max", "noise_max", "poor_quality_probability"):
        assert getattr(easy, field) < getattr(standard, field) < getattr(hard, field)


def test_from_preset_applies_overrides_of_both_levels():
    """Overrides reach SynthConfig fields and the preset's Difficulty fields alike."""
    config = SynthConfig.from_preset("hard", n=7, size=96, blur_max=0.0)
    assert (config.n, config.size, config.difficulty) == (7, 96, "hard")
    assert config.params == dataclasses.replace(DIFFICULTIES["hard"], blur_max=0.0)


def test_grade_mix_is_normalised():
    """Grade weights are normalised to probabilities."""
    config = SynthConfig(grade_mix=(2, 1, 1, 0, 0))
    assert config.grade_mix == pytest.approx((0.5, 0.25, 0.25, 0.0, 0.0))


def test_default_grade_mix_keeps_referable_cases_common():
    """By default 45% of eyes are referable (grade >= 2)."""
    assert sum(SynthConfig().grade_mix[2:]) == pytest.approx(0.45)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be a positive"),
        ({"n": -3}, "n must be a positive"),
        ({"size": 32}, "size must be an integer >= 64"),
        ({"seed": -1}, "seed must be"),
        ({"difficulty": "extreme"}, "difficulty 'extreme' is not one of"),
        ({"grade_mix": (1, 1)}, "grade_mix must be 5"),
        ({"pair_correlation": 1.5}, "pair_correlation must be in"),
    ],
)
def test_bad_values_are_rejected_clearly(kwargs, message):
    """Invalid settings fail at construction with the field's name in the message."""
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)


def test_unknown_override_is_rejected():
    """A misspelt override names the unknown field."""
    with pytest.raises(ValueError, match="blurr"):
        SynthConfig.from_preset("standard", blurr=1.0)
