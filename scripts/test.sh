#!/usr/bin/env bash
# Run the whole test suite: unit tests, fixture goldens, live s6 tests,
# packaging checks and the s6-overlay boot tests. Installs what the tests
# need on a Debian machine (the `s6` package and a few tools) when it is
# missing. Run as root: the live tests start a real s6-svscan and act as
# uid 10000 with s6-applyuidgid; the boot tests mount and chroot.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (the live s6 tests chown and switch uid)" >&2
  exit 100
fi

need=()
# xz, unshare and mount: tests/boot.rs unpacks s6-overlay and boots its /init.
for tool in s6-svscan:s6 s6-applyuidgid:s6 execlineb:execline file:file strace:strace \
  xz:xz-utils unshare:util-linux mount:mount; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "scripts/test.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --include-ignored: nothing may be left out; every test runs.
# --no-fail-fast: a failing test file does not hide the files after it.
cargo test --all-targets --no-fail-fast -- --include-ignored 2>&1 | tee "$log"
if grep -E "test result: .* [1-9][0-9]* ignored" "$log" >/dev/null; then
  echo "scripts/test.sh: some tests were ignored" >&2
  exit 1
fi
echo "scripts/test.sh: all tests passed"
