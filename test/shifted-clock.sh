#!/usr/bin/env bash
# Runs Jest with the whole process tree's clock moved (libfaketime, Debian's `faketime`): a year
# ahead, across the start of daylight saving time in New York (2027-03-14 07:00 UTC) and on a federal
# holiday (Thanksgiving, 2027-11-25). The hub and its tests read the moved clock; PostgreSQL and
# Redis keep the real one, so a rule that mixes the two clocks fails here.
#
#   test/shifted-clock.sh                  the date-sensitive suites at each instant
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
case "${1:-}" in
  --all) jest_args=() ;;
  --) shift; jest_args=("$@") ;;
  '') jest_args=("${SUITES[@]}") ;;
  *) echo "usage: $0 [--all | -- <jest args>]" >&2; exit 2 ;;
esac

INSTANTS=(
  "+365d"
  "@2027-03-14 06:50:00"
  "@2027-11-25 14:00:00"
)
# Timers and timeouts keep the real monotonic clock; only the calendar moves.
export FAKETIME_DONT_FAKE_MONOTONIC=1 TZ=UTC
for instant in "${INSTANTS[@]}"; do
  echo "== the clock at ${instant}"
  faketime -f "$instant" npm run --silent test:jest -- "${jest_args[@]}"
done
