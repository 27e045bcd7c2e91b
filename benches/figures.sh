#!/usr/bin/env bash
# Measures the figures of the conversion engine's issue side by side, in interleaved
# rounds, on data generated once:
#
#   - igzip -dc bench.jsonl.gz > /dev/null              (the decompression baseline)
#   - tidewater convert bench.jsonl.gz --schema monoschema
#   - tidewater convert bench.jsonl.gz --schema multischema
#   - both schemas on the same million events in one day (--days 1): peak RSS
#   - --threads 1 against --threads 2: identical output trees
#   - DuckDB doing the same job (only with DUCKDB=1: it takes about 25 s a run)
#   - the libraries' floor, gunzip + simd-json tapes of every line and nothing else
#     (examples/floor.rs), when its binary is built: no convert can beat it
#
# Rounds are interleaved because a VM's speed drifts by ±20% within minutes: a ratio is
# only meaningful between runs of the same round. Wall time, user+sys CPU and peak RSS
# come from GNU time.
#
# Usage: benches/figures.sh            (after `cargo build --release --examples`)
# Environment:
#   TW      the tidewater binary        (default target/release/tidewater)
#   FLOOR   the floor binary            (default target/release/examples/floor)
#   WORK    data and output folder      (default target/figures; needs ~3 GB free)
#   ROUNDS  interleaved rounds          (default 4)
#   EVENTS  events to generate          (default 1000000)
#   DUCKDB  1 to also time DuckDB's COPY (needs `pip install duckdb`)
set -euo pipefail

TW=${TW:-target/release/tidewater}
FLOOR=${FLOOR:-target/release/examples/floor}
WORK=${WORK:-target/figures}
ROUNDS=${ROUNDS:-4}
EVENTS=${EVENTS:-1000000}

die() { echo "figures.sh: $*" >&2; exit 2; }
[ -x "$TW" ] || die "no tidewater binary at $TW: run 'cargo build --release' or set TW"
[ -x /usr/bin/time ] || die "GNU time is needed at /usr/bin/time (Debian package 'time')"
TW=$(realpath "$TW")
have_floor=0
if [ -x "$FLOOR" ]; then
    FLOOR=$(realpath "$FLOOR")
    have_floor=1
else
    echo "no floor binary at $FLOOR ('cargo build --release --examples'): no floor rounds"
fi
mkdir -p "$WORK"
cd "$WORK"

data=bench-$EVENTS.jsonl.gz
data1d=bench-$EVENTS-1d.jsonl.gz
[ -f "$data" ] || "$TW" gen --events "$EVENTS" --days 30 --seed 1 --out "$data"
[ -f "$data1d" ] || "$TW" gen --events "$EVENTS" --days 1 --seed 1 --out "$data1d"

runs=$(mktemp)
trap 'rm -f "$runs" "$runs.one" summary.json; rm -rf out-*' EXIT

# run LABEL ROUND COMMAND...: one timed run, recorded as "label round wall cpu rss_kib".
# The page cache first writes back the previous run's output (and the deletion of the
# one before), which would otherwise happen during this run; then the inputs are read
# once, so that no run waits for the disk (an igzip round once took 5.6 s for 1.1 CPU-s).
run() {
    local label=$1 round=$2
    shift 2
    sync
    cat "$data" "$data1d" >/dev/null
    /usr/bin/time -f "$label $round %e %U %S %M" -o "$runs.one" "$@" >/dev/null
    awk '{ printf "%s %s %s %.2f %s\n", $1, $2, $3, $4 + $5, $6 }' "$runs.one" | tee -a "$runs"
}

have_igzip=0
command -v igzip >/dev/null && have_igzip=1
[ $have_igzip = 1 ] || echo "igzip not found (Debian package 'isal'): no baseline rounds"

echo "label round wall_s cpu_s peak_rss_kib"
for round in $(seq "$ROUNDS"); do
    [ $have_igzip = 1 ] && run igzip "$round" sh -c "igzip -dc '$data' > /dev/null"
    [ $have_floor = 1 ] && run floor "$round" "$FLOOR" "$data" parse
    for schema in monoschema multischema; do
        rm -rf "out-$schema"
        run "$schema" "$round" "$TW" convert "$data" --out "out-$schema" --schema "$schema" --quiet
    done
done
for schema in monoschema multischema; do
    rm -rf "out-1d-$schema"
    run "days1-$schema" 1 "$TW" convert "$data1d" --out "out-1d-$schema" --schema "$schema" --quiet
done
if [ "${DUCKDB:-0}" = 1 ]; then
    rm -f out-duckdb.parquet
    run duckdb 1 python3 -c "import duckdb; duckdb.connect().execute(\"COPY (SELECT event, properties.* FROM read_json('$data', map_inference_threshold=-1, sample_size=-1, ignore_errors=true)) TO 'out-duckdb.parquet' (FORMAT parquet)\")"
    rm -rf out-after-duckdb
    run after-duckdb 1 "$TW" convert "$data" --out out-after-duckdb --schema monoschema --quiet
fi

echo
echo "threads: --threads 1 against --threads 2"
for schema in monoschema multischema; do
    rm -rf out-t1 out-t2
    "$TW" convert "$data" --out out-t1 --schema "$schema" --quiet --threads 1 --json >summary.json
    "$TW" convert "$data" --out out-t2 --schema "$schema" --quiet --threads 2
    # The manifest records run times and thread counts; every data file must match.
    if diff -r -x manifest.json -x _manifest.json out-t1 out-t2 >/dev/null; then
        echo "  $schema: identical trees"
    else
        echo "  $schema: TREES DIFFER"
    fi
done

echo
python3 - "$runs" summary.json <<'EOF'
import json, statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
summary_json = json.load(open(sys.argv[2]))
raw_bytes = summary_json["input_bytes_uncompressed"]
events = summary_json["events_kept"] + summary_json["events_rejected"]
by = {}
for label, rnd, wall, cpu, rss in rows:
    by.setdefault(label, {})[int(rnd)] = (float(wall), float(cpu), int(rss) / 1024)
def summary(label):
    runs = by.get(label)
    if not runs:
        return
    walls = [w for w, _, _ in runs.values()]
    cpus = [c for _, c, _ in runs.values()]
    rss = [r for _, _, r in runs.values()]
    med = st.median(walls)
    print(f"{label:>20}: wall median {med:.2f} s (min {min(walls):.2f}, max {max(walls):.2f}), "
          f"cpu median {st.median(cpus):.2f} s, peak RSS max {max(rss):.0f} MiB, "
          f"{raw_bytes / med / 1e6:.0f} MB/s, {events / med / 1e3:.0f}k events/s")
def ratio(a, b, target=None):
    if a not in by or b not in by:
        return
    pairs = [by[a][r][0] / by[b][r][0] for r in by[a] if r in by[b]]
    # CPU time drifts less than wall time on a shared VM: a second view of the ratio.
    cpu = [by[a][r][1] / by[b][r][1] for r in by[a] if r in by[b]]
    print(f"{a} / {b} per round: {' '.join(f'{p:.2f}' for p in pairs)}; "
          f"median {st.median(pairs):.2f}{f' (target at most {target})' if target else ''}; "
          f"CPU time median {st.median(cpu):.2f}")
print(f"input: {raw_bytes / 1e6:.1f} MB uncompressed, {events} events")
for label in ["igzip", "floor", "monoschema", "multischema", "days1-monoschema",
              "days1-multischema", "duckdb", "after-duckdb"]:
    summary(label)
ratio("monoschema", "igzip", "3")
ratio("floor", "igzip")
ratio("monoschema", "floor")
ratio("multischema", "monoschema", "1.2")
if "duckdb" in by:
    d, t = by["duckdb"][1][0], by["after-duckdb"][1][0]
    print(f"duckdb / convert: {d / t:.1f}x (target at least 15)")
    if "floor" in by:
        f = st.median(w for w, _, _ in by["floor"].values())
        print(f"duckdb / floor: {d / f:.1f}x (the most any convert could reach here)")
EOF
