#!/usr/bin/env bash
# The whole test suite, as CI runs it (README's second command; .ci/run calls it).
#
# Three pytest processes at once, each with its own twister_nb home, Ray head and
# SeaweedFS: the crash-at-every-write test (tests/persist/test_crash_points.py,
# ~50 crashed and restarted programs) with the task-checkpoint tests (about 20
# failed or killed jobs restarted by ID, ~8 min: the rest is the longest group
# without them), the front ends (browser, notebook, server,
# install: mostly waiting on kernels, JupyterLab and Chromium), and everything
# else. Run one after the other they would take longer than CI allows. Extra
# arguments go to all three (e.g. -x). The exit status is non-zero if any
# failed; the two side groups' reports are printed after the main one.
set -uo pipefail
cd "$(dirname "$0")/.."

crash_tests=(tests/persist/test_crash_points.py tests/persist/test_task_checkpoints.py)
front_ends=(tests/browser tests/notebook tests/server tests/install)
crash_log=$(mktemp -t twister-nb-crash-tests.XXXXXX)
front_log=$(mktemp -t twister-nb-front-tests.XXXXXX)
python3 -m pytest -v --durations=5 -p no:cacheprovider "${crash_tests[@]}" "$@" >"$crash_log" 2>&1 &
crash_pid=$!
python3 -m pytest -v --durations=10 -p no:cacheprovider "${front_ends[@]}" "$@" >"$front_log" 2>&1 &
front_pid=$!
# Stopped by their PIDs if this script is stopped first.
trap 'kill -INT "$crash_pid" "$front_pid" 2>/dev/null; wait "$crash_pid" "$front_pid" 2>/dev/null' INT TERM

ignore=()
for t in "${crash_tests[@]}"; do ignore+=(--ignore="$t"); done
for d in "${front_ends[@]}"; do ignore+=(--ignore="$d"); done
python3 -m pytest -v --durations=15 "${ignore[@]}" "$@"
main_status=$?

wait "$front_pid"
front_status=$?
wait "$crash_pid"
crash_status=$?
trap - INT TERM
echo
echo "=================== ${front_ends[*]} (run beside the rest) ==================="
cat "$front_log"
echo
echo "=================== ${crash_tests[*]} (run beside the rest) ==================="
cat "$crash_log"
rm -f "$crash_log" "$front_log"
[ "$main_status" -eq 0 ] && [ "$front_status" -eq 0 ] && [ "$crash_status" -eq 0 ]
