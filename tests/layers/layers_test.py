"""The standard battery (tests/layers/battery.py) on every drscreen layer and variant."""

import pytest

from drscreen import layers
from tests.layers.battery import LayerCase, run_battery

FLAT = (12,)

CASES = [
    LayerCase("input_normalization", layers.InputNormalization),
    LayerCase("graham", layers.GrahamNormalization, (32, 32, 3)),
    LayerCase("graham_wide_blur", lambda: layers.GrahamNormalization(0.2)),
    LayerCase("conv_same", lambda: layers.Conv2D(4, 3)),
    LayerCase(
        "conv_valid_stride2_untied",
        lambda: layers.Conv2D(4, 3, strides=2, padding="valid", untied_bias=True),
    ),
    LayerCase("conv_4x4_same_stride2", lambda: layers.Conv2D(5, 4, strides=2)),
    LayerCase("conv_5x5_valid_stride2", lambda: layers.Conv2D(3, 5, strides=2, padding="valid")),
    LayerCase("leaky_relu", layers.LeakyReLU),
    LayerCase("relu", lambda: layers.LeakyReLU(0.0)),
    LayerCase("squared_relu", layers.SquaredReLU),
    LayerCase("sigmoid", layers.Sigmoid),
    LayerCase("max_pool_3_2_valid", lambda: layers.MaxPooling2D(3, 2)),
    LayerCase("max_pool_3_2_same", lambda: layers.MaxPooling2D(3, 2, padding="same")),
    LayerCase("max_pool_2_2", lambda: layers.MaxPooling2D(2, 2)),
    LayerCase("avg_pool_2", lambda: layers.AveragePooling2D(2)),
    LayerCase("avg_pool_3_2", lambda: layers.AveragePooling2D(3, 2)),
    LayerCase("rms_pool_3_3", lambda: layers.RMSPooling2D(3, 3)),
    LayerCase("rms_pool_3_2", lambda: layers.RMSPooling2D(3, 2)),
    LayerCase("global_avg_pool", layers.GlobalAveragePooling2D),
    LayerCase("global_max_pool", layers.GlobalMaxPooling2D),
    LayerCase("flatten", layers.Flatten),
    LayerCase("dense", lambda: layers.Dense(5), FLAT),
    LayerCase("dense_no_bias", lambda: layers.Dense(5, use_bias=False), FLAT),
    LayerCase("maxout", lambda: layers.Maxout(2), FLAT),
    LayerCase("maxout_3", lambda: layers.Maxout(3), FLAT),
    LayerCase("dropout", lambda: layers.Dropout(0.5, seed=3)),
    LayerCase("batch_norm", layers.BatchNormalization),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_battery(case, tmp_path):
    """The layer passes every check of the shared battery."""
    run_battery(case, tmp_path)
