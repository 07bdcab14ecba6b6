#!/usr/bin/env bash
# The live demo on the embedded default: start Kafka + Redis, train a first model on simulated history,
# run the streamer, publish simulated bank traffic (with analyst verdicts a day later), and show alerts live.
set -euo pipefail
cd "$(dirname "$0")/.."
FS=.venv/bin/fraudstream
DEMO=.fraudstream/demo
SECONDS_LIVE=${DEMO_SECONDS:-90}
mkdir -p "$DEMO"
# A Redis namespace of this run's own, so a second run (which re-simulates the same days) starts from fresh
# state; one consumer group for every demo run, so a run reads only what is published after the last one.
RUN=$(date +%Y%m%d%H%M%S)
export FRAUD_REDIS__NAMESPACE="demo$RUN" FRAUD_STREAMER__CONSUMER_GROUP="fraudstream-demo"
export FRAUD_REGISTRY__PATH="$DEMO/registry"
# Development only: the demo's registry is unsigned. Production sets FRAUD_REGISTRY__SIGNING_KEY instead.
export FRAUD_REGISTRY__ALLOW_UNSIGNED=true

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/5 embedded Kafka (KRaft) and redis-server"
$FS up

if [ ! -f "$DEMO/registry/current" ]; then
  step "2/5 simulate 5 weeks of history and train a first model (MLP 30-16-16-2 and a stacking ensemble)"
  $FS simulate --customers 2000 --merchants 500 --days 35 --start 2024-01-01 --seed 11 --out "$DEMO/history.parquet"
  $FS train --history "$DEMO/history.parquet" --config deploy/demo/train.yaml --report-dir "$DEMO/train-report"
else
  step "2/5 model registry already has a current version: $(cat "$DEMO/registry/current")"
fi

step "3/5 simulate live traffic and start the streamer"
$FS simulate --customers 2000 --merchants 500 --days 2 --start 2024-02-10 --seed "$RUN" --out "$DEMO/live.parquet"
$FS stream > "$DEMO/streamer.log" 2>&1 &
STREAMER=$!
PUBLISHER=""
cleanup() {
  [ -n "$PUBLISHER" ] && kill "$PUBLISHER" 2>/dev/null || true
  kill -TERM "$STREAMER" 2>/dev/null && wait "$STREAMER" 2>/dev/null || true
}
trap cleanup EXIT

step "4/5 publish simulated bank traffic at 200 messages/s (verdicts follow on the labels topic)"
$FS publish "$DEMO/live.parquet" --rate 200 --labels-delay 1d > "$DEMO/publisher.log" 2>&1 &
PUBLISHER=$!

step "5/5 alerts arriving live for ${SECONDS_LIVE}s (the security team's view: fraudstream alerts tail)"
timeout "$SECONDS_LIVE" $FS alerts tail --follow || true

step "done"
echo "streamer log: $DEMO/streamer.log; training report: $DEMO/train-report/report.md"
echo "the stack keeps running: \`make down\` (or .venv/bin/fraudstream down) stops it"
