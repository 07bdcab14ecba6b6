#!/usr/bin/env bash
# The whole test command: set everything up, lint and type-check, start the test stack (a real Kafka broker
# and a real redis-server of its own, on ports apart from the demo's), run the suite, stop the stack.
# MODE=full (everything, the fault tests and a 3-minute soak included: what `make test` and CI run),
# MODE=default (no fault tests), MODE=quick (unit tests only, no servers) or MODE=soak (the memory soak alone).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-default}

bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy

# The test stack's own folder and ports (override them to run two checkouts' suites side by side).
export FRAUD_EMBEDDED__STATE_DIR="${FRAUD_EMBEDDED__STATE_DIR:-$PWD/.fraudstream/test}"
export FRAUD_EMBEDDED__KAFKA_PORT=${FRAUD_EMBEDDED__KAFKA_PORT:-29092}
export FRAUD_EMBEDDED__CONTROLLER_PORT=${FRAUD_EMBEDDED__CONTROLLER_PORT:-29093}
export FRAUD_EMBEDDED__REDIS_PORT=${FRAUD_EMBEDDED__REDIS_PORT:-26379}
# The console's tests: the throwaway PostgreSQL server (tests/postgres_support.py) and the browser test's console.
export TEST_POSTGRES_PORT=${TEST_POSTGRES_PORT:-29432}
export FRAUD_CONSOLE__PORT=${FRAUD_CONSOLE__PORT:-29080}
case "$MODE" in
  quick)   markers="not integration and not slow and not full and not soak" ;;
  default) markers="not full and not soak" ;;
  full)    markers="full or not full" ;;
  soak)    markers="soak" ;;
  *) echo "test: MODE must be quick, default, full or soak (got '$MODE')" >&2; exit 2 ;;
esac

if [ "$MODE" != quick ]; then
  echo "== test stack"
  .venv/bin/fraudstream up
  trap '.venv/bin/fraudstream down >/dev/null 2>&1 || true' EXIT
fi

echo "== pytest ($MODE)"
set +e
.venv/bin/python -m pytest -m "$markers" --durations=30 "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "test: pytest collected no test for MODE=$MODE: that is a failure, not a pass" >&2
  exit 1
fi
if [ $rc -ne 0 ] && [ -s .pytest_cache/failure_reasons.txt ]; then
  # each failure's one-line reason, last: a CI log cut to its tail still says which tests failed and why
  echo "= failure reasons ="
  sed 's/^/= FAILED /' .pytest_cache/failure_reasons.txt
fi
exit $rc
