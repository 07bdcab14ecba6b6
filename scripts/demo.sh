#!/usr/bin/env bash
# The live demo on the embedded default (about 4 minutes once set up; see the README):
# start Kafka + Redis, train a first model on simulated history unless the configured registry has one, warm the
# streamer's features with the weeks before the live days, then publish live bank traffic (verdicts a day later)
# while `fraudstream demo watch` prints every alert marked with the simulator's truth and, every few seconds, the
# alerts per 1,000 transactions, precision, recall, fraud cards caught, the threshold and why.
#
# Ctrl-C (or the end of DEMO_SECONDS) stops the publisher, the streamer and the watcher at once (within 2 s), prints
# the final figures and what was left behind. Kafka and Redis keep running (`make down` stops them).
# Each run uses a consumer group, a Redis namespace and transaction ids of its own, and starts at its own start
# time, so a rerun never reads a previous run's backlog.
#
# Knobs: DEMO_SECONDS (live phase, default 90), DEMO_CUSTOMERS (2000), DEMO_HISTORY_DAYS (35 days to train on, at
# least 28), DEMO_WARMUP_DAYS (30), DEMO_LIVE_DAYS (2), DEMO_RATE (live messages/s, 200), DEMO_ALERTS_PER_DAY
# (the alert budget the threshold is chosen for; changing it retrains into a registry of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
FS=.venv/bin/fraudstream
DEMO=${DEMO_DIR:-.fraudstream/demo}
SECONDS_LIVE=${DEMO_SECONDS:-90}
CUSTOMERS=${DEMO_CUSTOMERS:-2000}
HISTORY_DAYS=${DEMO_HISTORY_DAYS:-35}
WARMUP_DAYS=${DEMO_WARMUP_DAYS:-30}
LIVE_DAYS=${DEMO_LIVE_DAYS:-2}
RATE=${DEMO_RATE:-200}
BUDGET=${DEMO_ALERTS_PER_DAY:-}
mkdir -p "$DEMO"

RUN=$(date -u +%Y%m%d%H%M%S)
RUN_DIR="$DEMO/run-$RUN"
mkdir -p "$RUN_DIR"
# Development only: the demo's registry is unsigned. Production sets FRAUD_REGISTRY__SIGNING_KEY instead.
export FRAUD_REGISTRY__ALLOW_UNSIGNED=true
export FRAUD_REDIS__NAMESPACE="demo$RUN" FRAUD_STREAMER__CONSUMER_GROUP="fraudstream-demo-$RUN"
export FRAUD_STREAMER__METRICS_PORT=${FRAUD_STREAMER__METRICS_PORT:-0} PYTHONUNBUFFERED=1
if [ -n "$BUDGET" ]; then  # another alert budget: a model of its own, in a registry of its own
  export FRAUD_REGISTRY__PATH="$DEMO/registry-budget-$BUDGET"
fi
REGISTRY=$($FS config | sed -n 's/^FRAUD_REGISTRY__PATH=\(.*\)$/\1/p' | sed 's/  # set$//')

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

PUBLISHER="" STREAMER="" WATCHER="" SLEEPER="" CONSOLE=""
alive() { for pid in "$@"; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
stop_within() {  # stop_within TENTHS PID...: TERM, wait up to TENTHS/10 s, then KILL what is left
  local tenths=$1; shift
  for pid in "$@"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq "$tenths"); do alive "$@" || return 0; sleep 0.1; done
  for pid in "$@"; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; done
  return 0
}
finish() {
  local code=$1
  trap - INT TERM EXIT
  set +e  # a kill of a process already gone is no error here
  # the publisher and the streamer first (an unfinished Kafka transaction is aborted: invisible to the watcher),
  # then the watcher reads what they committed and prints the final figures
  stop_within 10 "$PUBLISHER" "$STREAMER" "$SLEEPER" "$CONSOLE"
  stop_within 9 "$WATCHER"
  wait 2>/dev/null || true
  [ "$code" -eq 130 ] && echo "interrupted: publisher, streamer and watcher stopped"
  echo "run folder: $RUN_DIR (summary.json, streamer.log with a progress line every 5 s, publisher.log)"
  echo "model registry: $REGISTRY (set FRAUD_REGISTRY__PATH=$REGISTRY, and FRAUD_REGISTRY__ALLOW_UNSIGNED=true:"
  echo "  the demo's model is unsigned, for \`fraudstream stream\` and \`train\` to use it)"
  echo "still running: Kafka and Redis (\`.venv/bin/fraudstream status\`; \`make down\` stops them)"
  exit "$code"
}
trap 'finish 130' INT TERM
trap 'finish $?' EXIT

step "1/5 embedded Kafka (KRaft) and redis-server"
$FS up

step "2/5 simulate $CUSTOMERS cards over $HISTORY_DAYS days of history + $LIVE_DAYS live days"
TOTAL_DAYS=$((HISTORY_DAYS + LIVE_DAYS))
$FS simulate --customers "$CUSTOMERS" --merchants 500 --days "$TOTAL_DAYS" --start 2024-01-01 --seed 11 \
  --run-id "demo$RUN" --out "$RUN_DIR/world.parquet"
$FS demo split "$RUN_DIR/world.parquet" --history "$RUN_DIR/history.parquet" --warmup "$RUN_DIR/warmup.parquet" \
  --live "$RUN_DIR/live.parquet" --live-days "$LIVE_DAYS" --warmup-days "$WARMUP_DAYS"
if [ -f "$REGISTRY/current" ]; then
  echo "the registry $REGISTRY has a current model ($(cat "$REGISTRY/current")): no training"
else
  CONFIG=deploy/demo/train.yaml
  if [ -n "$BUDGET" ]; then
    sed "s/^alerts_per_day: .*/alerts_per_day: $BUDGET/" deploy/demo/train.yaml > "$RUN_DIR/train.yaml"
    CONFIG="$RUN_DIR/train.yaml"
  fi
  echo "training a first model into $REGISTRY (MLP 30-16-16-2 and a stacking ensemble; about a minute)"
  $FS train --history "$RUN_DIR/history.parquet" --config "$CONFIG" --report-dir "$DEMO/train-report"
fi

step "3/5 streamer and watcher (own group, Redis namespace demo$RUN; from this run's start time)"
START_MS=$(($(date +%s%3N) - 1000))
START_ISO=$(date -u -d "@$((START_MS / 1000))" +%Y-%m-%dT%H:%M:%SZ)
WARM_ROWS=$(.venv/bin/python -c "import pyarrow.parquet as pq, sys; print(pq.read_metadata(sys.argv[1]).num_rows)" "$RUN_DIR/warmup.parquet")
LIVE_ROWS=$(.venv/bin/python -c "import pyarrow.parquet as pq, sys; print(pq.read_metadata(sys.argv[1]).num_rows)" "$RUN_DIR/live.parquet")
$FS demo watch --truth "$RUN_DIR/live.parquet" --since-ms "$START_MS" --expected $((WARM_ROWS + LIVE_ROWS)) \
  --warmup "$WARM_ROWS" --ready "$RUN_DIR/warm" --summary "$RUN_DIR/summary.json" &
WATCHER=$!
$FS stream --from "$START_ISO" > "$RUN_DIR/streamer.log" 2>&1 &
STREAMER=$!
# the security console beside it: a demo analyst (password generated once, kept 0600 in the demo folder)
CONSOLE_PASSWORD_FILE="$DEMO/console-analyst.password"
[ -s "$CONSOLE_PASSWORD_FILE" ] || (umask 077; .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(12))" \
  > "$CONSOLE_PASSWORD_FILE")
$FS console create-user analyst --role analyst --password-stdin < "$CONSOLE_PASSWORD_FILE" >/dev/null 2>&1 || true
$FS console > "$RUN_DIR/console.log" 2>&1 &
CONSOLE=$!
CONSOLE_URL="http://$($FS config | sed -n 's/^FRAUD_CONSOLE__HOST=\([^ ]*\).*$/\1/p'):$($FS config | sed -n 's/^FRAUD_CONSOLE__PORT=\([^ ]*\).*$/\1/p')/"
echo "security console: $CONSOLE_URL (user analyst, password in $CONSOLE_PASSWORD_FILE; log $RUN_DIR/console.log)"

step "4/5 warm the features: $WARMUP_DAYS days before the live ones, as fast as the streamer reads them"
$FS publish "$RUN_DIR/warmup.parquet" --max --labels-delay 1d --stamp send > "$RUN_DIR/publisher.log" 2>&1
WARM_DEADLINE=$(($(date +%s) + 600))
while [ ! -f "$RUN_DIR/warm" ]; do
  alive "$STREAMER" || { echo "the streamer stopped; its log ends:"; tail -5 "$RUN_DIR/streamer.log"; exit 1; }
  [ "$(date +%s)" -lt "$WARM_DEADLINE" ] || { echo "the warm-up is not scored after 600 s; going live anyway"; break; }
  sleep 0.2
done

step "5/5 live traffic at $RATE messages/s for ${SECONDS_LIVE}s: alerts marked with the simulator's truth"
$FS publish "$RUN_DIR/live.parquet" --rate "$RATE" --labels-delay 1d --stamp send >> "$RUN_DIR/publisher.log" 2>&1 &
PUBLISHER=$!
sleep "$SECONDS_LIVE" &
SLEEPER=$!
wait "$SLEEPER" || true
step "done after ${SECONDS_LIVE}s live"
