"""Backward rules: which quantity a backward pass propagates through the layers.

Owns the rule vocabulary shared by every `BackpropLayer`; holds no layer code.

- ``"gradient"``: the exact chain rule (Simonyan et al. 2014, "Deep inside convolutional
  networks"; the sensitivity map of Quellec et al. 2017).
- ``"guided"``: guided back-propagation (Springenberg et al. 2015, "Striving for simplicity:
  the all convolutional net"): the gradient, and at every ReLU-family activation the negative
  upstream signal is also zeroed.
- ``"deconvnet"``: Zeiler & Fergus 2014, "Visualizing and understanding convolutional
  networks": ReLU-family activations pass ``relu(upstream)`` whatever the forward sign;
  linear layers and pooling switches act as in the gradient.
- ``"lrp_epsilon"``: layer-wise relevance propagation, epsilon rule (Bach et al. 2015, "On
  pixel-wise explanations for non-linear classifier decisions by layer-wise relevance
  propagation"): activations pass relevance through, max pooling and maxout route it to the
  winner, linear layers redistribute ``R_in = x * W^T (R_out / (z + eps * sign(z)))`` with
  ``z`` the layer's output including its bias and ``sign(0) = +1``.
"""

import dataclasses

RULE_NAMES = ("gradient", "guided", "deconvnet", "lrp_epsilon")


@dataclasses.dataclass(frozen=True)
class BackwardRule:
    """A backward rule: its name (one of `RULE_NAMES`) and the LRP stabiliser ``epsilon``."""

    name: str = "gradient"
    epsilon: float = 1e-6

    def __post_init__(self):
        if self.name not in RULE_NAMES:
            raise ValueError(f"backward rule {self.name!r} is not one of {RULE_NAMES}")
        if not self.epsilon > 0:
            raise ValueError(f"backward rule epsilon must be > 0, got {self.epsilon}")

    @property
    def is_lrp(self) -> bool:
        """Whether linear layers redistribute relevance instead of the gradient."""
        return self.name == "lrp_epsilon"

    @property
    def is_relu_modified(self) -> bool:
        """Whether ReLU-family activations deviate from the gradient (guided, deconvnet)."""
        return self.name in ("guided", "deconvnet")


GRADIENT = BackwardRule("gradient")
GUIDED = BackwardRule("guided")
DECONVNET = BackwardRule("deconvnet")


def lrp_epsilon(epsilon: float = 1e-6) -> BackwardRule:
    """The LRP-epsilon rule with stabiliser ``epsilon`` (> 0)."""
    return BackwardRule("lrp_epsilon", epsilon)
