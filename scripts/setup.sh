#!/usr/bin/env bash
# Installs every Debian package that mcpgate's build, tests and benchmarks need, and the npm
# packages the tests use (from package-lock.json). Idempotent: safe to run again.
# Node.js 20 and npm come with the machine; never install Debian's nodejs/npm (they conflict).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # toolchain
  build-essential g++ cmake ninja-build ccache lld clang libclang-rt-14-dev pkg-config
  # libraries (DESIGN.md §5)
  libssl-dev openssl
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-system1.81-dev
  libpugixml-dev libyaml-cpp-dev libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev libhiredis-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # test peers and tools
  python3 python3-jwt python3-requests python3-msal python3-cryptography curl ca-certificates
  # benchmark peers and tools
  nginx-light haproxy wrk gnuplot-nox valgrind
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts nginx/haproxy services on install; benchmarks start their own instances.
  for svc in nginx haproxy; do
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    if [ -f "/run/$svc.pid" ]; then kill "$(cat "/run/$svc.pid")" 2>/dev/null || true; fi
  done
else
  echo "setup: Debian packages already installed"
fi

if [ -f package-lock.json ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "setup: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  else
    echo "setup: npm packages already installed"
  fi
fi
