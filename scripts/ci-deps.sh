#!/usr/bin/env bash
# System packages the test suite needs beyond Python, installed when missing (as root, which CI is):
#   - PostgreSQL's server binaries from Debian's `postgresql` package: tests/postgres.py starts a server of
#     its own from them (initdb into a temporary directory, a free loopback port), so no cluster is created
#     or started by the package itself.
# A developer without root runs: sudo bash scripts/ci-deps.sh
set -euo pipefail

if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "ci-deps: PostgreSQL present ($(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | head -1))"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "ci-deps: installing postgresql needs root (sudo bash $0)" >&2; exit 1; }
# The package would create and start a `main` cluster as a service; the tests need only the binaries.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/sensor-connector-tests.conf
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
echo "ci-deps: installed $(ls -d /usr/lib/postgresql/*/bin | head -1)"
