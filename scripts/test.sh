#!/usr/bin/env bash
# The whole test suite, as CI runs it (README's second command; .ci/run calls it).
#
# Two pytest processes at once, each with its own twister_nb home, Ray head and
# SeaweedFS: the crash-at-every-write test (tests/persist/test_crash_points.py,
# ~50 crashed and restarted programs: most of its time is spent starting them)
# and everything else. Run one after the other they would take longer than CI
# allows. Extra arguments go to both (e.g. -x). The exit status is non-zero if
# either failed; the crash test's report is printed after the main one.
set -uo pipefail
cd "$(dirname "$0")/.."

crash_tests=tests/persist/test_crash_points.py
crash_log=$(mktemp -t twister-nb-crash-tests.XXXXXX)
python3 -m pytest -v --durations=5 -p no:cacheprovider "$crash_tests" "$@" >"$crash_log" 2>&1 &
crash_pid=$!
# Stopped by its PID if this script is stopped first.
trap 'kill -TERM "$crash_pid" 2>/dev/null; wait "$crash_pid" 2>/dev/null' INT TERM

python3 -m pytest -v --durations=15 --ignore="$crash_tests" "$@"
main_status=$?

wait "$crash_pid"
crash_status=$?
trap - INT TERM
echo
echo "=================== $crash_tests (run beside the rest) ==================="
cat "$crash_log"
rm -f "$crash_log"
[ "$main_status" -eq 0 ] && [ "$crash_status" -eq 0 ]
