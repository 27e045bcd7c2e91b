#!/usr/bin/env bash
# People figures: `tidewater export --data-source people` of generated profiles from the
# mock server's Engage API on loopback (no rate limit, pages of 1,000), beside
# `convert --data-source people` of the same profiles file and `convert` of the same
# profiles written as event lines. Reports wall time, profiles/s, MB/s of profile JSON
# and peak RSS, for each size in SIZES (peak RSS must not grow with the size).
#
# Usage: benches/people_figures.sh      (after `cargo build --release`)
# Environment: TW (binary), WORK (folder), ROUNDS (default 3),
#              SIZES (default "250000 1000000")
set -euo pipefail

TW=$(realpath "${TW:-target/release/tidewater}")
WORK=${WORK:-target/people-figures}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-250000 1000000}
mkdir -p "$WORK"
WORK=$(realpath "$WORK")

timed() { # name command... -> "name wall_s rss_mib"
    local name=$1
    shift
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@"
    read -r wall rss <"$WORK/time"
    echo "$name $wall $((rss / 1024))"
}

for n in $SIZES; do
    PROFILES="$WORK/profiles-$n.jsonl.gz"
    EVENTS="$WORK/profiles-$n-as-events.jsonl.gz"
    [ -f "$PROFILES" ] || "$TW" gen --profiles "$n" --out "$PROFILES" 2>/dev/null
    # The same profiles as event lines: distinct_id and the properties, with the
    # profile's creation as the event time, all on one day.
    [ -f "$EVENTS" ] || python3 - "$PROFILES" "$EVENTS" <<'EOF'
import gzip, json, sys
with gzip.open(sys.argv[1], "rt") as src, gzip.open(sys.argv[2], "wt", compresslevel=1) as dst:
    for line in src:
        p = json.loads(line)
        props = {"time": 1704067200, "distinct_id": p["$distinct_id"]}
        props.update(p["$properties"])
        dst.write(json.dumps({"event": "profile", "properties": props}, ensure_ascii=False, separators=(",", ":")) + "\n")
EOF
    JSON_MB=$(python3 -c "import gzip,sys; print(sum(len(l) for l in gzip.open(sys.argv[1])) / 1e6)" "$PROFILES")
    "$TW" mock-server --profiles "$PROFILES" --engage-rate-limit none >"$WORK/mock.url" 2>"$WORK/mock.log" &
    MOCK=$!
    trap 'kill $MOCK 2>/dev/null' EXIT
    for _ in $(seq 600); do [ -s "$WORK/mock.url" ] && break; sleep 0.1; done
    URL=$(head -1 "$WORK/mock.url")
    echo "# $n profiles, $JSON_MB MB of profile JSON"
    for round in $(seq "$ROUNDS"); do
        rm -rf "$WORK/out-export" "$WORK/out-convert" "$WORK/out-events"
        MIXPANEL_API_SECRET=bench timed "export-people" "$TW" export --data-source people \
            --base-url "$URL" --out "$WORK/out-export" --pace 100000/1s --quiet
        timed "convert-people" "$TW" convert --data-source people "$PROFILES" \
            --out "$WORK/out-convert" --quiet
        timed "convert-as-events" "$TW" convert "$EVENTS" --out "$WORK/out-events" --quiet
    done | tee "$WORK/rounds-$n.txt" | while read -r name wall rss; do
        awk -v n="$n" -v mb="$JSON_MB" -v name="$name" -v wall="$wall" -v rss="$rss" 'BEGIN {
            printf "round %-18s %7.2f s %9.0f profiles/s %7.1f MB/s %6d MiB peak RSS\n",
                name, wall, n / wall, mb / wall, rss }'
    done
    cmp <(cd "$WORK/out-export" && find mp_people_data schema -type f | sort | xargs sha256sum) \
        <(cd "$WORK/out-convert" && find mp_people_data schema -type f | sort | xargs sha256sum) \
        && echo "export and convert wrote the same files"
    kill $MOCK 2>/dev/null
    wait $MOCK 2>/dev/null || true
done
