"""What a conversion rule is: a pattern, a check that says why it does not apply, a replacement.

In the style of onnxscript's rewriter: a rule's ``match`` finds candidate places in the graph
(the pattern) and checks them, returning a :class:`Match` or a :class:`Miss` with the reason;
``apply`` rewrites one match. Misses are kept by a :class:`Trace` so ``snn-onnx convert
--explain`` can show why an activation was not turned into a neuron.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx_ir as ir

from ...naming import RULE_TAG, readable_name  # noqa: F401  (re-exported for the rules)


@dataclass
class Miss:
    """A place a rule looked at and did not take, and why."""

    rule: str
    where: str  # node names the pattern covered
    reason: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}: {self.reason}"


@dataclass
class Trace:
    """Near misses of every rule during one conversion (``--explain``)."""

    misses: list[Miss] = field(default_factory=list)

    def miss(self, rule: str, nodes: list[ir.Node], reason: str) -> None:
        self.misses.append(Miss(rule, ", ".join(n.name or n.op_type for n in nodes), reason))

    def lines(self) -> list[str]:
        return [str(m) for m in self.misses]


class Rule:
    """Base of the converter's rules; subclasses set ``name`` and implement ``match`` /
    ``apply``. New nodes a rule makes carry the metadata tag ``snn_onnx.rule = <name>``."""

    name: str = "rule"

    def match(self, ctx: Any) -> list[Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, ctx: Any, match: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError




def tag(node: ir.Node, rule: str) -> ir.Node:
    node.metadata_props[RULE_TAG] = rule
    return node


def unique_name(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}#{i}"
    taken.add(name)
    return name
