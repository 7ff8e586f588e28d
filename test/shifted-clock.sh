#!/usr/bin/env bash
# Runs Jest with the whole process tree's clock moved ahead (libfaketime, Debian's `faketime`): a
# year ahead, across next year's start of daylight saving time in New York (second Sunday of March,
# 07:00 UTC) and on next year's Thanksgiving (fourth Thursday of November), all computed from the day
# it runs, so the moved clock is always ahead of the real one. The hub and its tests read the moved
# clock; PostgreSQL and Redis keep the real one, so a rule that mixes the two clocks fails here.
#
#   test/shifted-clock.sh                  the date-sensitive suites at each instant
#   test/shifted-clock.sh --one            the date-sensitive suites at one of the three instants,
#                                          picked by the commit checked out (CI: each commit checks
#                                          one, the same one on every run of it; all three take
#                                          about twice as long)
#   test/shifted-clock.sh --all            every suite at each instant (about 5 minutes each)
#   test/shifted-clock.sh -- <jest args>   the suites you name
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v faketime >/dev/null 2>&1; then
  echo "shifted-clock: faketime is not installed (Debian package faketime)" >&2
  exit 1
fi

# The suites whose code applies a date rule: business days and holidays, due dates and reminders,
# policy and fee periods, ages, licences, token, session, code and lock-out lifetimes, TOTP.
SUITES=(
  src/cases
  test/case-intake.test.ts test/case-materials.test.ts test/case-progression.test.ts test/case-gaps.test.ts
  test/eligibility.test.ts test/registration.test.ts test/notify.test.ts test/audit.test.ts
  test/auth-login.test.ts test/auth-tokens.test.ts test/auth-totp-secrets.test.ts test/auth-rate-limits.test.ts
)
one=false
case "${1:-}" in
  --all) jest_args=() ;;
  --one) one=true; jest_args=("${SUITES[@]}") ;;
  --) shift; jest_args=("$@") ;;
  '') jest_args=("${SUITES[@]}") ;;
  *) echo "usage: $0 [--one | --all | -- <jest args>]" >&2; exit 2 ;;
esac

# The nth weekday (1 Monday … 7 Sunday) of a month of next year, as YYYY-MM-DD.
nth_weekday() { # month weekday n
  local year first offset
  year=$(($(date -u +%Y) + 1))
  first="$year-$1-01"
  offset=$(((7 + $2 - $(date -u -d "$first" +%u)) % 7 + 7 * ($3 - 1)))
  date -u -d "$first +$offset days" +%F
}
# An offset from now that starts the clock at the given UTC instant. Not faketime's "@instant": with
# it each process's clock starts at that instant when the process starts, so a hub started by a test
# a few seconds later would be seconds behind the test (its tokens "issued in the future").
starting_at() { # YYYY-MM-DD HH:MM:SS
  echo "+$(($(date -u -d "$1" +%s) - $(date -u +%s)))"
}
INSTANTS=(
  "+365d"
  "$(starting_at "$(nth_weekday 03 7 2) 06:50:00")"
  "$(starting_at "$(nth_weekday 11 4 4) 14:00:00")"
)
LABELS=("a year ahead" "$(nth_weekday 03 7 2) 06:50 UTC" "$(nth_weekday 11 4 4) 14:00 UTC")
workers=1
if [[ $one == true ]]; then
  # The commit's abbreviated hash, modulo 3: a fixed choice for a commit, spread over all three.
  pick=$((16#$(git rev-parse --short=1 HEAD) % 3))
  INSTANTS=("${INSTANTS[$pick]}")
  LABELS=("${LABELS[$pick]}")
  workers=2
fi
# Timers and timeouts keep the real monotonic clock; only the calendar moves.
export FAKETIME_DONT_FAKE_MONOTONIC=1 TZ=UTC
# The three instants run at once, one Jest worker each: the suites mostly wait (on the hub, the
# database, timers), so together they take little longer than one. Each one's output is kept apart
# and printed when it ends; any failure fails the run.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
for index in "${!INSTANTS[@]}"; do
  faketime -f "${INSTANTS[$index]}" npm run --silent test:jest -- --maxWorkers="$workers" "${jest_args[@]}" \
    >"$logs/$index.log" 2>&1 &
  pids+=($!)
done
status=0
for index in "${!INSTANTS[@]}"; do
  wait "${pids[$index]}" || status=1
  echo "== the clock at ${LABELS[$index]} (faketime ${INSTANTS[$index]})"
  cat "$logs/$index.log"
done
exit "$status"
