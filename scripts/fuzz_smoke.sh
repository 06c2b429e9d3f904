#!/usr/bin/env bash
# Fuzz smoke test: builds the cargo-fuzz targets (fuzz/) and runs each one
# for a short while over its committed corpus and regression inputs. Fails
# on any crash, panic, leak, timeout or allocation above the limits.
#
#   scripts/fuzz_smoke.sh [SECONDS_PER_TARGET]   (default 30)
#
# The committed corpus is never written to: each run works on a copy in a
# temp dir, and libFuzzer's crash artifacts go there too (the path is
# printed on failure). The build uses its own target dir, fuzz/target.
#
# The smoke builds with `--dev` (no optimisation; ASan, debug assertions and
# overflow checks as in release): on a clean 2-core machine that build takes
# ~3 min instead of ~7 min, and ~1,500 inputs/s are plenty to replay the
# corpus and mutate for 30 s. Long runs use release builds (docs/security.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
export PATH="$HOME/.cargo/bin:$PATH"

# cargo-fuzz needs nightly flags (-Zsanitizer). Prefer an installed nightly;
# without one, let the stable compiler accept them (RUSTC_BOOTSTRAP=1).
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  echo "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=$("${fuzz[@]}" list)
echo "fuzz targets: $(echo $targets)"
"${fuzz[@]}" build --dev

work=$(mktemp -d "${TMPDIR:-/tmp}/hts-fuzz-smoke.XXXXXX")
failed=()
for t in $targets; do
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  if [ -d "fuzz/corpus/$t" ]; then
    cp -R "fuzz/corpus/$t/." "$work/$t/corpus/"
  fi
  # Regression inputs are replayed too; the empty default keeps libFuzzer
  # from treating a missing dir as an error.
  regressions="fuzz/regressions/$t"
  [ -d "$regressions" ] || regressions="$work/$t/corpus"
  echo "==> $t: ${seconds}s over $(ls "$work/$t/corpus" | wc -l) corpus inputs"
  if ! "${fuzz[@]}" run --dev "$t" "$work/$t/corpus" "$regressions" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
      -artifact_prefix="$work/$t/artifacts/" -print_final_stats=1 2>"$work/$t/log"; then
    failed+=("$t")
    tail -n 60 "$work/$t/log"
    echo "FAIL $t: crash inputs in $work/$t/artifacts/"
  else
    grep -E '^stat::number_of_executed_units|^Done' "$work/$t/log" || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke failed: ${failed[*]} (inputs and logs kept in $work)"
  exit 1
fi
rm -rf "$work"
echo "fuzz smoke passed"
