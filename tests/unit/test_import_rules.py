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


# ---------------------------------------------------------------------------------------------- no back edges
REPO = FEATURES.parent
#: The installed packages (pyproject's packages.find); tests/ is none of them.
PACKAGES = ("fraudstream", "features", "state", "models", "training", "streamer", "bankbus", "backtest", "bench", "api",
            "console")
#: package -> packages it must never import (at module level or inside a function).
FORBIDDEN = {
    **{package: {"tests"} for package in PACKAGES},  # an installed package works outside a checkout
    # training, the model code and the streaming core are below backtest and bench: they never import them
    **{package: {"tests", "backtest", "bench"} for package in ("training", "models", "features", "state", "streamer",
                                                             "bankbus", "fraudstream")},
}


def imported_modules(source: str) -> set[str]:
    """Every absolute module name imported anywhere in the source (`from a.b import c` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py")) if (REPO / package).is_dir() else []


def test_no_package_imports_what_sits_above_it() -> None:
    offenders = {}
    for package, banned in FORBIDDEN.items():
        for path in _sources(package):
            bad = sorted(m for m in imported_modules(path.read_text()) if m.split(".")[0] in banned)
            if bad:
                offenders[str(path.relative_to(REPO))] = bad
    assert offenders == {}


def test_bench_and_training_are_scanned() -> None:
    assert len(_sources("bench")) >= 5 and len(_sources("training")) >= 5 and len(_sources("streamer")) >= 10


def test_engine_stats_live_in_the_shared_core_not_in_an_engine() -> None:
    """The engines share streamer/stats.py; neither engine module imports the other."""
    engines = {"streamer.kafka_engine": REPO / "streamer" / "kafka_engine.py",
               "streamer.faust_engine": REPO / "streamer" / "faust_engine.py"}
    for name, path in engines.items():
        others = {m for m in imported_modules(path.read_text()) if m.startswith(tuple(engines)) and m != name}
        assert others == set(), f"{path.name} imports {others}"
    defining = [str(p.relative_to(REPO)) for p in _sources("streamer") if "class EngineStats" in p.read_text()]
    assert defining == ["streamer/stats.py"]
    for package in PACKAGES:
        for path in _sources(package):
            assert "streamer.kafka_engine.EngineStats" not in imported_modules(path.read_text()), path


def test_the_back_edge_rule_catches_imports() -> None:
    source = "def f():\n    from tests.streamer_support import publish_tiny_model\nimport backtest.inputs\n"
    assert imported_modules(source) == {"tests.streamer_support", "tests.streamer_support.publish_tiny_model",
                                        "backtest.inputs"}


def test_every_command_module_exists_and_registers() -> None:
    from importlib import import_module

    from fraudstream.cli import COMMAND_MODULES

    for name in COMMAND_MODULES:
        assert callable(import_module(name).register), name
