"""The model registry: `build(name, ...)` for every network of the zoo."""

from collections.abc import Callable

import keras

from drscreen.models.evidence import evidence_net
from drscreen.models.oO import net_a, net_b
from drscreen.models.small import small_net
from drscreen.models.unet_evidence import unet_evidence_net

MODELS: dict[str, Callable[..., keras.Sequential]] = {
    "small": small_net,
    "oO_netA": net_a,
    "oO_netB": net_b,
    "evidence": evidence_net,
    "unet_evidence": unet_evidence_net,
}
EVIDENCE_MODELS = ("evidence", "unet_evidence")
"""The networks whose grade is the mean of an evidence map (`evidence.evidence_head`)."""


def build(
    name: str,
    input_size: int | None = None,
    width: int | None = None,
    normalization: str = "oO",
    **kwargs,
) -> keras.Sequential:
    """Build the zoo network ``name`` (one of `MODELS`).

    Parameters
    ----------
    name:
        ``"small"``, ``"oO_netA"``, ``"oO_netB"``, ``"evidence"`` or ``"unet_evidence"``.
    input_size, width:
        Override the network's default input side and first-stage width.
    normalization:
        In-model input normalisation (`stack.NORMALIZATIONS`; another name raises
        ValueError): ``"oO"``, the o_O per-channel z-score; ``"graham"``, Graham's
        local-average subtraction then ``(y - 128) / 64``.
    **kwargs:
        Passed to the network's builder (``kernel_regularizer``; ``dropout_rate`` for the
        networks with a dense head; ``depth`` for the o_O nets).

    Returns
    -------
    An uncompiled `keras.Sequential` mapping float32 RGB (N, S, S, 3) in [0, 255] to the
    grade regression (N, 1).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    if input_size is not None:
        kwargs["input_size"] = input_size
    if width is not None:
        kwargs["width"] = width
    return MODELS[name](normalization=normalization, **kwargs)
