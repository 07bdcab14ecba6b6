#!/usr/bin/env bash
# Installs everything fraudstream needs on a fresh Debian machine, idempotently:
# system packages (redis-server, Java 17, Maven; PostgreSQL, Chromium and chromedriver for the console's tests),
# the Python 3.11 virtualenv with the locked packages
# (requirements/dev.txt, written by scripts/lock.sh),
# and the Kafka jars (resolved from Maven Central by deploy/kafka/pom.xml on first `fraudstream up`).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
# the console's integration tests: a throwaway PostgreSQL server (initdb/pg_ctl) and a real headless browser
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || need_apt+=(postgresql)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing system packages: ${need_apt[*]}; install them (as root: apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    PY=$candidate; break
  fi
done
if [ -z "$PY" ]; then
  echo "setup: Python 3.11 is required (python3.11 or python3 at version 3.11); install it and run again" >&2
  exit 1
fi
bash scripts/venv_support.sh "$PY"  # Debian's python3.11 needs python3.11-venv for `-m venv`

# VENV picks another folder (a throwaway check of a fresh install); everything else uses .venv.
VENV=${VENV:-.venv}
LOCK=requirements/dev.txt  # every transitive version, from scripts/lock.sh
stamp="$VENV/.installed-$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: creating $VENV and installing the locked packages (a first run downloads about 1 GB, TensorFlow"
  echo "setup: alone about 600 MB, and takes 3 to 5 minutes; each download is listed with its size)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  SETUP_PIP_LOG="$VENV/pip-install.log" bash scripts/pip_progress.sh \
    "$VENV/bin/python" -m pip install -c "$LOCK" -e ".[train,faust,bench,dev]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
"$VENV/bin/python" -m features.jit  # compiles the feature kernels once (numba's cache), so no worker waits for it
"$VENV/bin/python" -m models.tree_kernels  # the forest's scoring and TreeSHAP kernels, likewise
echo "setup: ready ($("$VENV/bin/python" --version), redis-server $(redis-server --version | grep -o 'v=[0-9.]*'), $(java -version 2>&1 | head -1))"
