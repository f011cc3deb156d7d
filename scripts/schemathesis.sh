#!/usr/bin/env bash
# The outside contract check: schemathesis (PyPI) runs every operation of the published
# OpenAPI document (GET /v1/openapi.json) against a live `senderod --dev` with its real API key:
# examples, coverage, fuzzing and the stateful links (quote → execute, route → submit → payment,
# invoice, webhook). Fails on any server error, undocumented status, wrong content type or header,
# or a response that breaks the schema. Needs a built senderod ($CARGO_TARGET_DIR/debug) and
# BITCOIND_EXE; schemathesis is installed once into ~/.cache/sendero/venv.
# Usage: scripts/schemathesis.sh [max examples per operation, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/sendero/target}"
: "${BITCOIND_EXE:?BITCOIND_EXE must name a bitcoind (scripts/setup.sh prints one)}"
VERSION=4.32.5
VENV="$HOME/.cache/sendero/venv"
EXAMPLES="${1:-50}"

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
    if ! python3 -m venv --help >/dev/null 2>&1; then
        echo "schemathesis.sh: installing python3-venv" >&2
        sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq python3-venv python3-pip >&2
    fi
    echo "schemathesis.sh: installing schemathesis $VERSION into $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
fi

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$CARGO_TARGET_DIR/debug/senderod" --dev --datadir "$WORK/dev" --api-listen "127.0.0.1:$PORT" >"$WORK/senderod.log" 2>&1 &
PID=$!
cleanup() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 120); do
    if [ -s "$WORK/dev/dev-api-key" ] && python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/v1/health', timeout=2)" 2>/dev/null; then break; fi
    if ! kill -0 "$PID" 2>/dev/null; then cat "$WORK/senderod.log" >&2; echo "schemathesis.sh: senderod died" >&2; exit 1; fi
    sleep 1
done
KEY="$(cat "$WORK/dev/dev-api-key")"

echo "schemathesis.sh: schemathesis $VERSION against senderod --dev on 127.0.0.1:$PORT, $EXAMPLES examples per operation" >&2
status=0
(cd "$WORK" && "$VENV/bin/schemathesis" --no-color run "http://127.0.0.1:$PORT/v1/openapi.json" \
    --header "Authorization: Bearer $KEY" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$EXAMPLES" --workers 2) || status=$?
if grep -q "panicked" "$WORK/senderod.log"; then
    grep -A3 "panicked" "$WORK/senderod.log" >&2
    echo "schemathesis.sh: senderod panicked" >&2
    status=1
fi
exit "$status"
