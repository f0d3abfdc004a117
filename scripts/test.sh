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
#
# The warm pool (runtime.pool.size, 1 by default) stays on for the front ends, which
# run as a new user's session does; the other two groups turn it off. Their tests
# start hundreds of jobs, many with their own worker counts or CPUs, for which a
# spare's workers are no use: with the pool on there, each job started its actors
# twice (the spare's and its own), the load reached 20-32 on 2 cores and two
# multi-node set-ups timed out. The pool's own tests (tests/engine/test_warm_pool.py
# and others that set TWISTER_NB_RUNTIME__POOL__SIZE) turn it on for themselves.
set -uo pipefail
cd "$(dirname "$0")/.."

crash_tests=(tests/persist/test_crash_points.py tests/persist/test_task_checkpoints.py)
front_ends=(tests/browser tests/notebook tests/server tests/install)
crash_log=$(mktemp -t twister-nb-crash-tests.XXXXXX)
front_log=$(mktemp -t twister-nb-front-tests.XXXXXX)
TWISTER_NB_RUNTIME__POOL__SIZE=0 \
  python3 -m pytest -v --durations=5 -p no:cacheprovider "${crash_tests[@]}" "$@" >"$crash_log" 2>&1 &
crash_pid=$!
python3 -m pytest -v --durations=10 -p no:cacheprovider "${front_ends[@]}" "$@" >"$front_log" 2>&1 &
front_pid=$!
# Stopped by their PIDs if this script is stopped first.
trap 'kill -INT "$crash_pid" "$front_pid" 2>/dev/null; wait "$crash_pid" "$front_pid" 2>/dev/null' INT TERM

ignore=()
for t in "${crash_tests[@]}"; do ignore+=(--ignore="$t"); done
for d in "${front_ends[@]}"; do ignore+=(--ignore="$d"); done
TWISTER_NB_RUNTIME__POOL__SIZE=0 python3 -m pytest -v --durations=15 "${ignore[@]}" "$@"
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
