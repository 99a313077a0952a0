#!/usr/bin/env bash
# Installs every Debian package tandem needs (idempotent, safe to re-run), then builds.
#   scripts/setup.sh            install and build the release preset
#   scripts/setup.sh --no-build install only
#   TANDEM_PRESET=debug scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential g++ cmake ninja-build ccache pkg-config git clang-tidy
  postgresql-15 postgresql-client-15 libpq-dev
  libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libssl-dev libsodium-dev libsqlite3-dev sqlite3 libcurl4-openssl-dev zlib1g-dev
  docker-registry skopeo nodejs
  knot libldns-dev bind9-dnsutils
  libgtest-dev libgmock-dev googletest libbenchmark-dev libvalijson-dev
  curl procps util-linux iproute2 nftables
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm comes with some builds of nodejs and is a package of its own in Debian's.
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: npm is missing and installing it needs root" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
fi
# Test tooling from npm (a local S3-compatible server), pinned by tools/npm/package-lock.json.
npm ci --prefix tools/npm --no-audit --no-fund --loglevel=error

# The docker-registry package may start a registry of its own on :5000; tandem manages its own
# registries (one per region, on the region's address) and needs none.

# The knot package may start a Knot DNS of its own on :53 where an init system runs; tandem's
# control plane runs its own (on the pair's dns.address and dns.port) and needs none.

# The Debian postgresql package creates and starts a default cluster; tandem manages its own
# servers and needs none, but leaves the package's cluster alone if an operator uses it.

# Unprivileged system user that runs the PostgreSQL servers tandem manages when it runs as root
# (initdb refuses to run as root).
if [ "$(id -u)" -eq 0 ] && ! id tandem >/dev/null 2>&1; then
  useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin tandem
fi

[ "${1:-}" = "--no-build" ] && exit 0

preset="${TANDEM_PRESET:-release}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j2
