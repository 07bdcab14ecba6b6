#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml with uv, from PyPI: every transitive version pinned, for CPython 3.11
# on x86-64 Linux (CI, the images). Run it after changing a dependency in pyproject.toml, and commit requirements/.
#   requirements/dev.txt      every extra but gpu (train, faust, bench, dev): scripts/setup.sh installs .venv with it
#   requirements/runtime.txt  `pip install .` alone: the streamer image
#   requirements/train.txt    the runtime plus [train]: the training image
#   requirements/gpu.txt      the runtime plus [gpu] (onnxruntime-gpu and the CUDA libraries): a GPU machine
# runtime.txt, train.txt and gpu.txt are resolved under dev.txt's versions, so they never disagree. [gpu] stays out
# of dev.txt: onnxruntime-gpu and dev's onnxruntime install the same module.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
if [ ! -x "$UV" ]; then
  UV=$(command -v uv || true)
  if [ -z "$UV" ]; then
    echo "lock: uv is not installed; run scripts/setup.sh (it installs uv into .venv) or pip install uv" >&2
    exit 1
  fi
fi
mkdir -p requirements
common=(--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --index-url https://pypi.org/simple
        --no-sources --quiet --custom-compile-command "scripts/lock.sh")
"$UV" pip compile pyproject.toml --extra train --extra faust --extra bench --extra dev "${common[@]}" \
  -o requirements/dev.txt
"$UV" pip compile pyproject.toml -c requirements/dev.txt "${common[@]}" -o requirements/runtime.txt
"$UV" pip compile pyproject.toml --extra train -c requirements/dev.txt "${common[@]}" -o requirements/train.txt
"$UV" pip compile pyproject.toml --extra gpu -c requirements/dev.txt "${common[@]}" -o requirements/gpu.txt
for lock in requirements/dev.txt requirements/runtime.txt requirements/train.txt requirements/gpu.txt; do
  echo "lock: $lock pins $(grep -c '^[A-Za-z0-9]' "$lock") packages"
done
