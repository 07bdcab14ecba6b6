"""What a benchmark ran on: CPU model, cores, memory, GPU presence, and the versions of everything that matters."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

POM = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "pom.xml"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def kafka_jar_version() -> str | None:
    """The broker version pinned in deploy/kafka/pom.xml (the embedded broker's jars)."""
    try:
        found = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    except OSError:
        return None
    return found.group(1) if found else None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(argv: list[str] | None = None) -> dict[str, Any]:
    import confluent_kafka

    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": _load_average(),
        "os": platform.platform(),
        "command": shlex.join([Path(sys.executable).name, "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "versions": {
            "python": platform.python_version(),
            "kafka_broker_jars": kafka_jar_version(),
            "confluent_kafka": confluent_kafka.version()[0],
            "librdkafka": confluent_kafka.libversion()[0],
            "faust_streaming": _version("faust-streaming"),
            "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
            "keras": _version("keras"),
            "scikit_learn": _version("scikit-learn"),
            "numpy": _version("numpy"),
            "pydantic": _version("pydantic"),
            "redis_py": _version("redis"),
        },
    }
