#!/usr/bin/env bash
# Object-storage figures: `tidewater convert` of the generated 1M-event file into a
# local folder, into S3 (moto_server) and into Azure Blob (Azurite), both emulators on
# loopback, in interleaved rounds. Reports wall time, peak RSS, MB/s uploaded and the
# number of requests the emulator served.
#
# Usage: benches/store_figures.sh      (after `cargo build --release`; needs moto_server
#                                       and azurite-blob on PATH, as .ci/run installs)
# Environment: TW (binary), WORK (folder), ROUNDS (default 3), EVENTS (default 1000000),
#              SCHEMA (default monoschema)
set -euo pipefail

TW=$(realpath "${TW:-target/release/tidewater}")
WORK=${WORK:-target/store-figures}
ROUNDS=${ROUNDS:-3}
EVENTS=${EVENTS:-1000000}
SCHEMA=${SCHEMA:-monoschema}
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
DATA="$WORK/bench.jsonl.gz"
[ -f "$DATA" ] || "$TW" gen --events "$EVENTS" --out "$DATA"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3_PORT=$(port)
AZ_PORT=$(port)
moto_server -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
azurite-blob --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --inMemoryPersistence \
    --disableTelemetry --skipApiVersionCheck --loose --debug "$WORK/azurite.log" >/dev/null 2>&1 &
AZURITE=$!
trap 'kill $MOTO $AZURITE 2>/dev/null' EXIT
for p in "$S3_PORT" "$AZ_PORT"; do
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$p") 2>/dev/null && break; sleep 0.1; done
done
curl -sf -X PUT "http://127.0.0.1:$S3_PORT/bench" >/dev/null
python3 - "$AZ_PORT" <<'EOF'
import base64, email.utils, hashlib, hmac, http.client, sys
acct = "devstoreaccount1"
key = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
date, ver = email.utils.formatdate(usegmt=True), "2021-08-06"
sts = "PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{ver}\n/{acct}/{acct}/bench\nrestype:container"
sig = base64.b64encode(hmac.new(key, sts.encode(), hashlib.sha256).digest()).decode()
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("PUT", f"/{acct}/bench?restype=container", headers={"x-ms-date": date, "x-ms-version": ver,
          "Authorization": f"SharedKey {acct}:{sig}", "Content-Length": "0"})
assert c.getresponse().status == 201
EOF

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true
export AZURE_STORAGE_ACCOUNT_NAME=devstoreaccount1 AZURE_STORAGE_USE_EMULATOR=true \
    AZURE_STORAGE_ACCOUNT_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==" \
    AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$AZ_PORT"

run() { # name out -> "name wall_s rss_mib"
    local name=$1 out=$2
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$TW" convert "$DATA" --out "$out" --schema "$SCHEMA" --quiet
    read -r wall rss <"$WORK/time"
    echo "$name $wall $((rss / 1024))"
}

bytes=0
for r in $(seq "$ROUNDS"); do
    rm -rf "$WORK/local"
    run local "$WORK/local"
    bytes=$(du -sb --exclude=.tidewater "$WORK/local" | cut -f1)
    before=$(grep -c '" 200\|" 204\|" 206' "$WORK/moto.log" || true)
    line=$(run s3 "s3://bench/r$r")
    after=$(grep -c '" 200\|" 204\|" 206' "$WORK/moto.log" || true)
    wall=$(echo "$line" | cut -d' ' -f2)
    echo "$line $(python3 -c "print(f'{$bytes/1e6/$wall:.0f} MB/s')") $((after - before)) requests"
    before=$(grep -c 'BlobStorageContextMiddleware: RequestMethod' "$WORK/azurite.log" || true)
    line=$(run azure "az://bench/r$r")
    after=$(grep -c 'BlobStorageContextMiddleware: RequestMethod' "$WORK/azurite.log" || true)
    wall=$(echo "$line" | cut -d' ' -f2)
    echo "$line $(python3 -c "print(f'{$bytes/1e6/$wall:.0f} MB/s')") $((after - before)) requests"
done
echo "output: $bytes bytes per run ($SCHEMA)"
