"""Running `fraudstream stream` as a subprocess with the settings of a test (FRAUD_* environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fraudstream.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def env_for(settings: Settings) -> dict[str, str]:
    """The FRAUD_* environment that rebuilds these settings in a child process (metrics on a free port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(
        {
            "FRAUD_KAFKA__BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "FRAUD_REDIS__URL": settings.redis_url,
            "FRAUD_REDIS__NAMESPACE": settings.redis.namespace,
            "FRAUD_REGISTRY__PATH": str(settings.registry.path),
            "FRAUD_REGISTRY__ALLOW_UNSIGNED": str(settings.registry.allow_unsigned),
            "FRAUD_STREAMER__METRICS_PORT": "0",
            "FRAUD_LOG_LEVEL": "WARNING",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
    )
    for name, value in settings.topics.model_dump().items():
        env[f"FRAUD_TOPICS__{name.upper()}"] = str(value)
    names = ("consumer_group", "transactional_id", "scorer", "poll_batch_size", "micro_batch_max_wait_ms",
             "commit_interval_ms", "processing_guarantee", "recovery_timeout_s", "redis_retry_max_s",
             "event_time_alignment", "alignment_max_wait_ms")
    for name in names:
        value = getattr(settings.streamer, name)
        if value is not None:  # unset stays unset (scorer: the model's policy)
            env[f"FRAUD_STREAMER__{name.upper()}"] = str(value)
    for section, name in (("registry", "signing_key"), ("streamer", "user_id_hmac_key")):
        secret = getattr(getattr(settings, section), name)
        if secret is not None:
            env[f"FRAUD_{section.upper()}__{name.upper()}"] = secret.get_secret_value()
    return env


def start_worker(settings: Settings, instance_id: str, idle_exit_s: float = 5.0) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "fraudstream",
        "stream",
        "--engine",
        "kafka",
        "--idle-exit",
        str(idle_exit_s),
        "--instance-id",
        instance_id,
        "--from",
        "earliest",
    ]
    return subprocess.Popen(
        command, cwd=REPO, env=env_for(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
