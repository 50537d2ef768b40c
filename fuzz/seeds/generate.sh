#!/usr/bin/env bash
# Regenerates the signed seeds of the fuzz corpus (docs/fuzzing.md): a
# throwaway deployment takes one case through the quick start, then its
# checkpoint, a case proof, an auditor bundle (case and whole log) and the
# log's verifier key are copied into fuzz/corpus/. The targets that check
# signatures trust fuzz/corpus/log.vkey, so seeds and key always come from the
# same run. Usage: fuzz/seeds/generate.sh [path/to/custody]
set -euo pipefail
cd "$(dirname "$0")/../.."
CUSTODY=${1:-target/debug/custody}
SCRATCH=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$SCRATCH"' EXIT
export CUSTODY_DATA="$SCRATCH/data"
export CUSTODY_URL=http://127.0.0.1:18777
"$CUSTODY" init --origin fuzz.custody.example/log --json > "$SCRATCH/init.json"
export CUSTODY_TOKEN=$(sed -n 's/.*"admin_token": "\(.*\)".*/\1/p' "$SCRATCH/init.json")
VKEY=$(sed -n 's/.*"verifier_key": "\(.*\)".*/\1/p' "$SCRATCH/init.json")
"$CUSTODY" serve --listen 127.0.0.1:18777 > "$SCRATCH/serve.log" 2>&1 &
SERVER=$!
until "$CUSTODY" whoami > /dev/null 2>&1; do sleep 0.2; done
for name in alice bob carol dave; do "$CUSTODY" principal add "$name" > /dev/null; done
ALICE=$("$CUSTODY" token create alice); BOB=$("$CUSTODY" token create bob)
CAROL=$("$CUSTODY" token create carol); DAVE=$("$CUSTODY" token create dave)
CASE=$(CUSTODY_TOKEN=$ALICE "$CUSTODY" request --subject user:alice --entitlement admin \
        --resource prod-db --ticket jira:SEC-142 --justification "incident 4711")
CUSTODY_TOKEN=$BOB "$CUSTODY" approve "$CASE" --comment "ok" > /dev/null
echo '{"added": [{"role": "admin", "resource": "prod-db", "user": "alice"}]}' > "$SCRATCH/change-set.json"
CUSTODY_TOKEN=$CAROL "$CUSTODY" execute "$CASE" --change-set "$SCRATCH/change-set.json" > /dev/null
CUSTODY_TOKEN=$DAVE "$CUSTODY" review "$CASE" --outcome confirmed > /dev/null
"$CUSTODY" log checkpoint --new > "$SCRATCH/checkpoint.txt"
"$CUSTODY" log prove "$CASE" --out "$SCRATCH/case-proof.json"
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
"$CUSTODY" export --data "$CUSTODY_DATA" --format bundle --case "$CASE" --out "$SCRATCH/case.bundle" 2> /dev/null
"$CUSTODY" export --data "$CUSTODY_DATA" --format bundle --out "$SCRATCH/log.bundle" 2> /dev/null
"$CUSTODY" export --data "$CUSTODY_DATA" --format jsonl --out "$SCRATCH/events.jsonl" 2> /dev/null
C=fuzz/corpus
mkdir -p $C/checkpoint $C/note $C/case_proof $C/bundle $C/tlog_proof $C/roundtrip $C/canonical $C/canonical_differential
printf '%s\n' "$VKEY" > $C/log.vkey
cp "$SCRATCH/checkpoint.txt" $C/checkpoint/signed
cp "$SCRATCH/checkpoint.txt" $C/note/checkpoint
cp "$SCRATCH/case-proof.json" $C/case_proof/quickstart
cp "$SCRATCH/case.bundle" $C/bundle/case
cp "$SCRATCH/log.bundle" $C/bundle/whole-log
cp "$SCRATCH/change-set.json" "$C/canonical/change-set"
# The tlog-proofs and the events' canonical bytes inside the case proof.
python3 - "$SCRATCH/case-proof.json" "$C" <<'PY'
import base64, json, sys
proof = json.load(open(sys.argv[1]))
corpus = sys.argv[2]
for number, event in enumerate(proof["events"]):
    for key, value in event.items():
        if key.endswith("proof"):
            open(f"{corpus}/tlog_proof/event-{number}", "w").write(value)
        if key in ("leaf", "event", "canonical"):
            data = base64.b64decode(value)
            for target in ("canonical", "canonical_differential"):
                open(f"{corpus}/{target}/event-{number}", "wb").write(data)
            open(f"{corpus}/roundtrip/event-{number}", "wb").write(b"e" + data)
open(f"{corpus}/roundtrip/checkpoint", "w").write("c" + proof["checkpoint"])
open(f"{corpus}/roundtrip/note", "w").write("n" + proof["checkpoint"])
PY
python3 fuzz/seeds/derived.py
python3 fuzz/seeds/connectors.py
echo "seeds written; case $CASE, key $VKEY"
