"""features/ is pure: no module there imports a storage or broker client (checked on the AST)."""

from __future__ import annotations

import ast
from pathlib import Path

BANNED = {"redis", "confluent_kafka", "faust", "aiokafka", "fakeredis", "kafka"}
FEATURES = Path(__file__).resolve().parents[2] / "features"


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_features_import_no_storage_or_broker() -> None:
    files = sorted(FEATURES.rglob("*.py"))
    assert len(files) >= 5
    offenders = {str(f.relative_to(FEATURES)): sorted(imported_roots(f.read_text()) & BANNED) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_rule_catches_imports() -> None:
    assert imported_roots("import redis.asyncio\nfrom confluent_kafka import Consumer\n") == {
        "redis",
        "confluent_kafka",
    }
    assert imported_roots("def f():\n    import faust\n") == {"faust"}
