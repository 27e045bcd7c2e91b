#!/usr/bin/env bash
# A 30-day date-ranged pipeline of `tidewater serve` against `tidewater export` of the
# same days with the same options, both from the mock server on loopback with its
# limits raised, in interleaved rounds (a VM's speed drifts; compare within a round):
#
#   - tidewater export --from 2024-01-01 --to 2024-01-30 (monoschema Parquet)
#   - tidewater serve, a pipeline from_date 2024-01-01 to_date 2024-01-30,
#     data_format=parquet, timed from the create call until its 30 runs succeeded
#
# Wall time and peak RSS (GNU time for export; the server's VmHWM for serve, which
# includes the idle server itself).
#
# Usage: benches/service_figures.sh      (after `cargo build --release`)
# Environment: TW (default target/release/tidewater), WORK (default
# target/service-figures), ROUNDS (default 5), EVENTS (default 1000000).
set -euo pipefail

TW=$(realpath "${TW:-target/release/tidewater}")
WORK=${WORK:-target/service-figures}
ROUNDS=${ROUNDS:-5}
EVENTS=${EVENTS:-1000000}
SECRET=figures-secret
mkdir -p "$WORK"
cd "$WORK"
data=bench-$EVENTS.jsonl.gz
[ -f "$data" ] || "$TW" gen --events "$EVENTS" --days 30 --seed 1 --out "$data"

"$TW" mock-server --data "$data" --secret "$SECRET" --rate-limit none \
    --listen 127.0.0.1:18181 > mock.url &
mock_pid=$!
serve_pid=
trap 'kill $mock_pid ${serve_pid:-} 2>/dev/null || true; rm -rf out-* state-*' EXIT
sleep 1
MOCK=http://127.0.0.1:18181
export MIXPANEL_API_SECRET=$SECRET
export TIDEWATER_SECRET_KEY=$("$TW" serve secret-key)

now_s() { date +%s.%N; }

# Warm-up (not reported): the first export after the mock starts is slower than all
# later ones, whichever command makes it.
MIXPANEL_API_SECRET=$SECRET "$TW" export --from 2024-01-01 --to 2024-01-30 --out out-warm \
    --base-url "$MOCK" --pace 1000/1s --quiet
rm -rf out-warm
ratios=()

for round in $(seq 1 "$ROUNDS"); do
    rm -rf out-export
    /usr/bin/time -f "%e %M" -o time.txt "$TW" export --from 2024-01-01 --to 2024-01-30 \
        --out out-export --base-url "$MOCK" --pace 1000/1s --quiet
    read -r wall rss < time.txt
    echo "round $round export: ${wall} s, peak RSS $((rss / 1024)) MiB"

    rm -rf out-serve state-$round.db
    "$TW" serve --state state-$round.db --listen 127.0.0.1:18182 --mixpanel-url "$MOCK" \
        --no-limits --rate-limit 1000/1s 2> serve.log &
    serve_pid=$!
    until curl -sf http://127.0.0.1:18182/healthz > /dev/null; do sleep 0.05; done
    start=$(now_s)
    curl -sf -u "$SECRET:" http://127.0.0.1:18182/api/2.0/nessie/pipeline/create \
        -d project_id=1 -d type=local -d path="$PWD/out-serve" -d data_format=parquet \
        -d from_date=2024-01-01 -d to_date=2024-01-30 > /dev/null
    name=events-2024-01-01-2024-01-30-backfill-daily-local-monoschema
    until curl -sf -u "$SECRET:" \
        "http://127.0.0.1:18182/api/2.0/nessie/pipeline/status?project_id=1&name=$name&summary=true" \
        | grep -q '"succeeded":30'; do
        sleep 0.05
    done
    end=$(now_s)
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$serve_pid/status)
    kill $serve_pid; wait $serve_pid 2>/dev/null || true
    serve_pid=
    serve_s=$(echo "$end - $start" | bc)
    ratio=$(echo "scale=3; $serve_s / $wall" | bc)
    ratios+=("$ratio")
    echo "round $round serve:  $serve_s s, peak RSS $((hwm / 1024)) MiB; serve/export $ratio"
    # Same data either way (the pipeline writes under <path>/<project_id>/).
    if ! diff -rq -x manifest.json -x _manifest.json -x .tidewater out-export out-serve/1 > /dev/null; then
        echo "round $round: the outputs differ" >&2
        exit 1
    fi
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median serve/export over $ROUNDS rounds: $median"
