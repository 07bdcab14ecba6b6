"""`python -m streamer.probe live|ready`: ask this container's worker for /health or /ready; exit 0 when it says yes.

The Dockerfile's HEALTHCHECK and docker-compose.yml run it inside the worker's container: it reads the same
FRAUD_* settings as the worker (the metrics host and port) and prints one line.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from fraudstream.errors import ConfigError
from fraudstream.settings import load_settings

PATHS = {"live": "/health", "ready": "/ready"}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PATHS:
        print("usage: python -m streamer.probe live|ready", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 2
    host = settings.streamer.metrics_host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    url = f"http://{host}:{settings.streamer.metrics_port}{PATHS[argv[0]]}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            print(f"{argv[0]}: {response.read().decode(errors='replace')}")
            return 0
    except urllib.error.HTTPError as exc:
        print(f"not {argv[0]}: {exc.read().decode(errors='replace')}")
    except OSError as exc:
        print(f"not {argv[0]}: nothing answers at {url} ({exc})")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
