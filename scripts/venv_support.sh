#!/usr/bin/env bash
# venv_support.sh PYTHON: make sure `PYTHON -m venv` can work. Debian and Ubuntu ship the venv/ensurepip part of
# Python in a package of its own (python3.11-venv); without it `python3.11 -m venv` fails half-way. Installs it with
# apt-get when missing (as root), otherwise says what to run. Called by scripts/setup.sh.
set -euo pipefail
PY=${1:?usage: venv_support.sh PYTHON}
has_venv() { "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; }
has_venv && exit 0
version=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
package="python${version}-venv"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: $PY has no venv/ensurepip module; install your distribution's $package (or a full Python $version)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: $PY cannot create virtualenvs: the package $package is missing; install it (as root: apt-get install $package)" >&2
  exit 1
fi
echo "setup: installing $package ($PY cannot create virtualenvs without it)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "$package" >/dev/null
has_venv || { echo "setup: $package is installed but $PY still has no venv/ensurepip module" >&2; exit 1; }
echo "setup: $package installed"
