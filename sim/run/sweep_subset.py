"""The ``subset`` filter of a factorial sweep: a small, safe expression language (no ``eval``).

A factorial grid crosses every level of every factor; ``subset`` keeps only the grid points
where an expression is true, as SimDesign's ``createDesign(..., subset = ...)`` does, e.g.::

    subset = "not (caliper_scale == 'absolute' and caliper > 0.2)"
    subset = "arms.combination.size <= arms.sorafenib.size"

The expression is parsed with Python's :mod:`ast` and evaluated by walking the tree: only the
nodes below are accepted, anything else (calls, attribute access on values, lambdas,
comprehensions, subscripts) is refused with a message naming it, so a sweep file can never run
code.

=====================  =============================================================
names                  factor names, or the dotted path of a one-path factor
                       (``outcome.treatment.hazard_ratio``); ``true``/``false``
literals               numbers, 'strings', [lists] and (tuples) of literals
arithmetic             ``+ - * / % **`` and unary ``-``
comparisons            ``== != < <= > >= in not in`` (chains allowed: ``0 < x <= 1``)
logic                  ``and or not`` and parentheses
=====================  =============================================================
"""

from __future__ import annotations

import ast
import operator
from typing import Any, Callable, Mapping

from sim.errors import ScenarioError

__all__ = ["compile_subset"]

_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}


def _power(base, exponent):
    """``base ** exponent`` with the exponent bounded (``10 ** 10 ** 10`` must not hang)."""
    if abs(exponent) > 64:
        raise ValueError(f"exponent {exponent!r} is larger than 64")
    return base**exponent


_ARITHMETIC = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Mod: operator.mod, ast.Pow: _power,
}
_CONSTANTS = {"true": True, "false": False, "True": True, "False": False}


def _dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` written as nested Attribute nodes, as one dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _check(node: ast.AST, names: set[str], where: str) -> None:
    """Refuse every node the language does not have, and unknown names."""
    if isinstance(node, ast.Expression):
        _check(node.body, names, where)
    elif isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted_name(node)
        if name is None:
            raise ScenarioError(where, "attribute access on a value is not allowed")
        if name not in names and name not in _CONSTANTS:
            raise ScenarioError(where, f"unknown name {name!r} (allowed: the factor names "
                                       f"{', '.join(sorted(names))}, true, false)")
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool)):
            raise ScenarioError(where, f"literal {node.value!r} is not a number or string")
    elif isinstance(node, (ast.List, ast.Tuple)):
        for item in node.elts:
            _check(item, names, where)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, names, where)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
        _check(node.operand, names, where)
    elif isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        _check(node.left, names, where)
        _check(node.right, names, where)
    elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        _check(node.left, names, where)
        for item in node.comparators:
            _check(item, names, where)
    else:
        raise ScenarioError(where, f"{type(node).__name__} is not allowed in a subset "
                                   "expression (use names, literals, arithmetic, comparisons, "
                                   "and/or/not)")


def _evaluate(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted_name(node)
        return values[name] if name in values else _CONSTANTS[name]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(item, values) for item in node.elts]
    if isinstance(node, ast.BoolOp):
        results = (_evaluate(value, values) for value in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        return _ARITHMETIC[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    left = _evaluate(node.left, values)
    for op, comparator in zip(node.ops, node.comparators):
        right = _evaluate(comparator, values)
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True


def compile_subset(expression: str, names: set[str], *, where: str = "subset"
                   ) -> Callable[[Mapping[str, Any]], bool]:
    """Parse and check ``expression`` once; return a predicate of a grid point's values.

    Parameters
    ----------
    expression : str
        The filter (see the module docstring).
    names : set of str
        The names it may use (factor names and one-path factors' dotted paths).
    where : str
        The field to name in errors.

    Returns
    -------
    callable
        ``keep(values)`` with ``values`` mapping every name to the point's value; True keeps
        the point.

    Raises
    ------
    ScenarioError
        A syntax error, a construct outside the language, an unknown name — or, from the
        predicate, an operation that fails on a grid point's values (e.g. ``'a' < 1``).
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ScenarioError(where, "must be a non-empty expression string")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ScenarioError(where, f"{expression!r} is not a valid expression ({err.msg})") from None
    _check(tree, set(names), where)

    def keep(values: Mapping[str, Any]) -> bool:
        try:
            return bool(_evaluate(tree, values))
        except (TypeError, ZeroDivisionError, OverflowError, ValueError) as err:
            shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
            raise ScenarioError(where, f"{expression!r} fails at the grid point {shown}: {err}") from None

    return keep
