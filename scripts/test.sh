#!/usr/bin/env bash
# The test command (README): installs what is needed, builds, and runs every test:
#   1. Debian and npm packages (scripts/setup.sh)
#   2. release build: libraries, mcpgate, unit tests, benchmarks
#   3. all tests with ctest: unit tests and process-level tests with third-party peers
#   4. asan preset (ASan + UBSan + LeakSanitizer): the unit tests again, and the gateway under
#      10,000 randomly aborted requests
#   5. libFuzzer smoke runs (clang) over the seed corpora
#   6. the module layering check
# Prints the time of each stage and a closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
start_all=$SECONDS
passed=0
failed=0
declare -a timings=()

stage() {
  local name=$1
  shift
  local t0=$SECONDS
  echo
  echo "==> $name"
  if "$@"; then
    timings+=("$(printf '%-28s %4ds  ok' "$name" $((SECONDS - t0)))")
  else
    timings+=("$(printf '%-28s %4ds  FAILED' "$name" $((SECONDS - t0)))")
    report
    exit 1
  fi
}

report() {
  echo
  echo "==> stage times"
  printf '%s\n' "${timings[@]}"
  printf 'total %ds\n' $((SECONDS - start_all))
}

# Runs ctest in a build folder and adds its counts to the closing line.
run_ctest() {
  local dir=$1
  shift
  local log
  log=$(mktemp)
  local rc=0
  (cd "$dir" && ctest --output-on-failure "$@") 2>&1 | tee "$log" || rc=$?
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
  rm -f "$log"
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  else
    failed=$((failed + 1))
  fi
  return "$rc"
}

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}

stage "setup" scripts/setup.sh
stage "build release" bash -c 'cmake --preset release >/dev/null && cmake --build --preset release'
stage "tests (release)" run_ctest build/release
stage "build asan" bash -c 'cmake --preset asan >/dev/null && cmake --build --preset asan'
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  stage "tests (asan)" run_ctest build/asan
stage "build fuzz" bash -c 'cmake --preset fuzz >/dev/null && cmake --build --preset fuzz'
fuzz_smoke() {
  local target
  for target in jwt_parse_fuzz jwks_fuzz policy_load_fuzz request_head_fuzz json_scan_fuzz; do
    local work
    work=$(mktemp -d)
    local corpus=fuzz/corpus/${target%_fuzz}
    [ "$target" = jwks_fuzz ] && corpus=fuzz/corpus/jwks
    [ "$target" = policy_load_fuzz ] && corpus=fuzz/corpus/policy
    [ "$target" = request_head_fuzz ] && corpus=fuzz/corpus/request_head
    echo "fuzz: $target for ${FUZZ_SECONDS}s"
    if build/fuzz/fuzz/$target -max_total_time="$FUZZ_SECONDS" -max_len=16384 -print_final_stats=1 \
        "$work" "$corpus" 2>&1 | tail -5; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      rm -rf "$work"
      return 1
    fi
    rm -rf "$work"
  done
}
stage "fuzz smoke" fuzz_smoke
stage "layering" scripts/check_layering.sh
report
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
