"""Conversion rules, one module per rule; each is an object with a pattern, a check that
says why it does not apply, and a replacement (``base.Rule``).

* ``activation``: ReLU / clip / staircase activations, however spelled, become IF or ParaIF
  neurons (identified by what they compute, ``identify.py``).
"""

from .activation import ActivationRule, Site
from .base import RULE_TAG, Miss, Rule, Trace, readable_name, tag
from .identify import ChainEvaluator, Function, NotIdentified

__all__ = [
    "RULE_TAG",
    "ActivationRule",
    "ChainEvaluator",
    "Function",
    "Miss",
    "NotIdentified",
    "Rule",
    "Site",
    "Trace",
    "readable_name",
    "tag",
]
