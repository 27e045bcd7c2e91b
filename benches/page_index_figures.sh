#!/usr/bin/env bash
# Output size and convert time with and without the Parquet page index, and filtered
# reads of the outputs (benches/read_filter.py), on the generated 1M-event file.
#
# Usage: BEFORE=<a build of the commit before the page index> benches/page_index_figures.sh
#   e.g. git worktree add /tmp/before 3f07b63~1 && (cd /tmp/before && cargo build --release)
#        BEFORE=/tmp/before/target/release/tidewater benches/page_index_figures.sh
# Environment: AFTER (default target/release/tidewater), WORK (default
# target/page-index-figures), EVENTS (1000000), ROUNDS (3, interleaved), SPARK=1 to time
# Spark's reads too.
set -euo pipefail

AFTER=$(realpath "${AFTER:-target/release/tidewater}")
BEFORE=$(realpath "${BEFORE:?set BEFORE to the tidewater binary without the page index}")
WORK=${WORK:-target/page-index-figures}
EVENTS=${EVENTS:-1000000}
ROUNDS=${ROUNDS:-3}
READ=$(realpath "$(dirname "$0")/read_filter.py")
mkdir -p "$WORK"
cd "$WORK"
data=bench-$EVENTS.jsonl.gz
[ -f "$data" ] || "$AFTER" gen --events "$EVENTS" --out "$data"

for schema in monoschema multischema; do
    for round in $(seq "$ROUNDS"); do
        for which in before after; do
            bin=$BEFORE
            [ "$which" = after ] && bin=$AFTER
            out=out-$schema-$which
            rm -rf "$out"
            sync
            wall=$( { /usr/bin/time -f %e "$bin" convert "$data" --out "$out" --schema "$schema" --quiet; } 2>&1 )
            bytes=$(find "$out" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {print s}')
            echo "$schema $which round $round: ${wall} s, $(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1e6}') MB of Parquet"
        done
    done
done
python3 "$READ" out-monoschema-before out-monoschema-after
