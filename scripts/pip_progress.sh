#!/usr/bin/env bash
# pip_progress.sh PIP-ARGS...: run `pip install` showing what it downloads and how big, one line each (pip's own
# progress bars when the terminal is interactive), without the known build-backend warnings; the whole pip output
# is kept in $SETUP_PIP_LOG (default /tmp/fraudstream-pip.log) and its end shown when pip fails.
set -uo pipefail
log=${SETUP_PIP_LOG:-${TMPDIR:-/tmp}/fraudstream-pip.log}
if [ -t 1 ]; then
  PYTHONWARNINGS=ignore "$@" --progress-bar on 2>&1 | tee "$log" | grep --line-buffered -v -E \
    'BuildBackendWarning|SetuptoolsDeprecationWarning|^[[:space:]]*(!!|\*{8,})|Requirement already satisfied'
else
  PYTHONWARNINGS=ignore "$@" --progress-bar off 2>&1 | tee "$log" | grep --line-buffered -E \
    '^[[:space:]]*Downloading |^Installing collected packages|^Successfully installed|^ERROR|^error' \
    | sed -u -E 's/^[[:space:]]*Downloading (.*)$/setup: downloading \1/'
fi
code=${PIPESTATUS[0]}
if [ "$code" -ne 0 ]; then
  echo "setup: pip failed (exit $code); its output ($log) ends:" >&2
  tail -30 "$log" >&2
fi
exit "$code"
