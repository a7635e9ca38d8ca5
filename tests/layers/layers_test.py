"""The standard battery (tests/layers/battery.py) on every drscreen layer and variant."""

import pytest

from drscreen import layers
from tests.layers.battery import LayerCase, run_battery

FLAT = (12,)

# Output shapes and parameter counts by hand, for (16, 16, 3) inputs unless stated: 'same'
# gives ceil(16 / stride), 'valid' (16 - k) // stride + 1; a k x k conv has k·k·3·f kernel
# weights plus f tied biases, or h·w·f untied ones.
CASES = [
    LayerCase("input_normalization", layers.InputNormalization, (16, 16, 3), 0),
    LayerCase("graham", layers.GrahamNormalization, (32, 32, 3), 0, (32, 32, 3)),
    LayerCase("graham_wide_blur", lambda: layers.GrahamNormalization(0.2), (16, 16, 3), 0),
    LayerCase("conv_same", lambda: layers.Conv2D(4, 3), (16, 16, 4), 3 * 3 * 3 * 4 + 4),
    LayerCase(
        "conv_valid_stride2_untied",
        lambda: layers.Conv2D(4, 3, strides=2, padding="valid", untied_bias=True),
        (7, 7, 4),
        3 * 3 * 3 * 4 + 7 * 7 * 4,
    ),
    LayerCase(
        "conv_4x4_same_stride2",
        lambda: layers.Conv2D(5, 4, strides=2),
        (8, 8, 5),
        4 * 4 * 3 * 5 + 5,
    ),
    LayerCase(
        "conv_5x5_valid_stride2",
        lambda: layers.Conv2D(3, 5, strides=2, padding="valid"),
        (6, 6, 3),
        5 * 5 * 3 * 3 + 3,
    ),
    LayerCase("leaky_relu", layers.LeakyReLU, (16, 16, 3), 0),
    LayerCase("relu", lambda: layers.LeakyReLU(0.0), (16, 16, 3), 0),
    LayerCase("squared_relu", layers.SquaredReLU, (16, 16, 3), 0),
    LayerCase("sigmoid", layers.Sigmoid, (16, 16, 3), 0),
    LayerCase("max_pool_3_2_valid", lambda: layers.MaxPooling2D(3, 2), (7, 7, 3), 0),
    LayerCase("max_pool_3_2_same", lambda: layers.MaxPooling2D(3, 2, padding="same"), (8, 8, 3), 0),
    LayerCase("max_pool_2_2", lambda: layers.MaxPooling2D(2, 2), (8, 8, 3), 0),
    LayerCase("avg_pool_2", lambda: layers.AveragePooling2D(2), (8, 8, 3), 0),
    LayerCase("avg_pool_3_2", lambda: layers.AveragePooling2D(3, 2), (7, 7, 3), 0),
    LayerCase("rms_pool_3_3", lambda: layers.RMSPooling2D(3, 3), (5, 5, 3), 0),
    LayerCase("rms_pool_3_2", lambda: layers.RMSPooling2D(3, 2), (7, 7, 3), 0),
    LayerCase("global_avg_pool", layers.GlobalAveragePooling2D, (3,), 0),
    LayerCase("global_max_pool", layers.GlobalMaxPooling2D, (3,), 0),
    LayerCase("flatten", layers.Flatten, (16 * 16 * 3,), 0),
    LayerCase("dense", lambda: layers.Dense(5), (5,), 12 * 5 + 5, FLAT),
    LayerCase("dense_no_bias", lambda: layers.Dense(5, use_bias=False), (5,), 12 * 5, FLAT),
    LayerCase("maxout", lambda: layers.Maxout(2), (6,), 0, FLAT),
    LayerCase("maxout_3", lambda: layers.Maxout(3), (4,), 0, FLAT),
    LayerCase("dropout", lambda: layers.Dropout(0.5, seed=3), (16, 16, 3), 0),
    LayerCase("batch_norm", layers.BatchNormalization, (16, 16, 3), 4 * 3),  # γ, β, mean, var
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_battery(case, tmp_path):
    """The layer passes every check of the shared battery."""
    run_battery(case, tmp_path)
