#!/usr/bin/env bash
# Sets up (installs Debian packages, builds) and runs the whole test suite with ctest.
# Every test starts what it needs itself (PostgreSQL in a temporary directory, the region
# process) on loopback and free ports, and stops it by PID.
#   scripts/test.sh                 everything
#   scripts/test.sh -L unit         only the fast unit tests (ctest options pass through)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${TANDEM_PRESET:-release}"
TANDEM_PRESET="$preset" scripts/setup.sh
ctest --preset "$preset" "$@"
