"""Every stored attribute name lives in ``storage/_keys.py``, and none changes by accident."""

from __future__ import annotations

import ast
from pathlib import Path

from stagetune.storage import LINEAGE_KEYS, StudyAttr, TrialAttr, TrialSystemAttr

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("spaces", "storage", "objectives", "search")
ATTR_CALLS = {"set_user_attr", "set_system_attr", "set_trial_user_attr", "set_trial_system_attr"}


def _values(cls: type) -> dict[str, str]:
    return {k: v for k, v in vars(cls).items() if k.isupper()}


def test_stored_names_are_the_stored_format() -> None:
    """Searches already in a database are read by these names: renaming one strands them."""
    study = _values(StudyAttr)
    assert study["STAGE"] == "stagetune_stage"
    assert study["PLAN_SPEC"] == "stagetune_plan_spec"
    assert study["RANGE_TEST"] == "stagetune_lr_range_test"
    assert all(v.startswith("stagetune_") for v in study.values())
    assert _values(TrialSystemAttr)["WORKER"] == "stagetune:worker"
    assert _values(TrialAttr)["LR_DIAGNOSIS"] == "lr_diagnosis"
    assert set(LINEAGE_KEYS) <= set(study.values())


def test_each_name_is_one_attribute() -> None:
    for cls in (StudyAttr, TrialAttr, TrialSystemAttr):
        values = list(_values(cls).values())
        assert len(values) == len(set(values)), cls.__name__


def _literal_keys(path: Path) -> list[str]:
    """String literals used as attribute names: in ``set_user_attr("x", ...)``,
    ``user_attrs["x"]``, ``user_attrs.get("x")``, ``"x" in t.user_attrs``."""
    found = []

    def attrs_of(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr in ("user_attrs", "system_attrs")

    def literal(node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        keys: list[str | None] = []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ATTR_CALLS:
                keys = [literal(arg) for arg in node.args[:2]]
            elif node.func.attr == "get" and attrs_of(node.func.value) and node.args:
                keys = [literal(node.args[0])]
        elif isinstance(node, ast.Subscript) and attrs_of(node.value):
            keys = [literal(node.slice)]
        elif isinstance(node, ast.Compare) and any(attrs_of(c) for c in node.comparators):
            keys = [literal(node.left)]
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {k!r}" for k in keys if k]
    return found


def test_code_names_stored_attributes_by_their_constants() -> None:
    literals = [
        hit
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "_keys.py"
        for hit in _literal_keys(path)
    ]
    assert literals == [], "use stagetune.storage.StudyAttr / TrialAttr / TrialSystemAttr"
