#!/usr/bin/env bash
# The session of mock_scraper.ts as a plain shell pipe: one JSON command per line on the client's stdin, one
# JSON answer per line on its stdout (the first being the ready line).
#
#   bash examples/mock_session.sh
#
# The deno that runs the client: $DENO if set, else deno on PATH, else `npx -y deno@2.9.6` (Deno from the
# npm registry, for machines with only Node.js).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ -n "${DENO:-}" ]; then
  deno=("$DENO")
elif command -v deno >/dev/null 2>&1; then
  deno=(deno)
elif command -v npx >/dev/null 2>&1; then
  deno=(npx -y deno@2.9.6)
else
  echo "mock_session.sh: neither deno nor npx found: install Node.js (for npx) or Deno 2.9.6" >&2
  exit 127
fi

printf '%s\n' \
  '{"type":"set_mock","content":{"secrets":{"login":{"username":"scraper","password":"hunter2"}}}}' \
  '{"type":"get_user_secret","content":{"key":"login","encryption_key":"not used in mock mode"}}' \
  '{"type":"has_cached_reference","content":"vacancy-1"}' \
  '{"type":"send_cv","content":{"referenceNumber":"vacancy-1","presentation":"Experienced welder"}}' \
  '{"type":"has_cached_reference","content":"vacancy-1"}' \
  '{"type":"send_cv","content":{"referenceNumber":"vacancy-1"}}' \
  '{"type":"send_cv","content":{"referenceNumber":""}}' \
  '{"type":"ping"}' |
  "${deno[@]}" run -A "$here/../main.ts"
