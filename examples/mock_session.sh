#!/usr/bin/env bash
# The session of mock_scraper.ts as a plain shell pipe: one JSON command per line on the client's stdin, one
# JSON answer per line on its stdout (the first being the ready line).
#
#   bash examples/mock_session.sh
#
# DENO picks the deno binary (default: deno on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

printf '%s\n' \
  '{"type":"set_mock","content":{"secrets":{"login":{"username":"scraper","password":"hunter2"}}}}' \
  '{"type":"get_user_secret","content":{"key":"login","encryption_key":"not used in mock mode"}}' \
  '{"type":"has_cached_reference","content":"vacancy-1"}' \
  '{"type":"send_cv","content":{"referenceNumber":"vacancy-1","presentation":"Experienced welder"}}' \
  '{"type":"has_cached_reference","content":"vacancy-1"}' \
  '{"type":"send_cv","content":{"referenceNumber":"vacancy-1"}}' \
  '{"type":"send_cv","content":{"referenceNumber":""}}' \
  '{"type":"ping"}' |
  "${DENO:-deno}" run -A "$here/../main.ts"
