"""The value head, as the market studies import it: it lives on the model side now
(:mod:`genads.parallel.value_head`, beside the generator whose state it reads; the jointly trained variant is
:mod:`genads.parallel.joint_value`). This module re-exports it so the market code stays a consumer."""

from genads.parallel.value_head import (
    ValueConfig,
    ValueHead,
    bias_uncertainty,
    eb_shrink,
    fit_value_head,
    platt,
    position_logloss,
    shrunk_head,
)

__all__ = ["ValueConfig", "ValueHead", "bias_uncertainty", "eb_shrink", "fit_value_head", "platt",
           "position_logloss", "shrunk_head"]
