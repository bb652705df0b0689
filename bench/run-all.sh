#!/usr/bin/env bash
# Run the benchmark that docs/benchmarks.md reports: privacyIDEA's sweep, then tapgate's sweep
# with privacyIDEA's levels merged into its table and plot, then tapgate's scale run, then the
# cluster run on 1, 2 and 3 nodes sharing PostgreSQL (TAPGATE_BENCH_DATABASE_URL, default
# postgresql://postgres@127.0.0.1:5432/postgres).
#
# Usage: bench/run-all.sh [OUTPUT_DIR]   (default: bench-results)
# Needs the tapgate virtual environment with the `bench` extra (matplotlib) and network access
# to PyPI the first time, when bench/privacyidea/setup.sh installs privacyIDEA 3.14.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results}
py=${PYTHON:-/work/venv/bin/python}

bench/privacyidea/setup.sh
"$py" bench/privacyidea/run.py --hash both --users 200 --concurrency 1,10,50,200 \
    --duration 15 --output "$out/privacyidea"
# At 50 and 200 concurrent logins a privacyIDEA login takes longer than 15 s, so those levels
# run again for 60 s. Their results replace the 15-second ones in the merged table.
"$py" bench/privacyidea/run.py --hash both --users 200 --concurrency 50,200 \
    --duration 60 --output "$out/privacyidea-long"
# Without a PIN check (otppin=none), the counterpart of tapgate's --hash none below.
"$py" bench/privacyidea/run.py --hash none --users 200 --concurrency 1,10 \
    --duration 15 --output "$out/privacyidea-none"
"$py" bench/privacyidea/run.py --hash none --users 200 --concurrency 50,200 \
    --duration 60 --output "$out/privacyidea-none-long"
"$py" -m tapgate.cli bench --hash both --users 1000 --concurrency 1,10,50,200 --duration 15 \
    --compare "$out/privacyidea/results.json" --compare "$out/privacyidea-long/results.json" \
    --output "$out/sweep"
# No password check in tapgate, the Auth API and RADIUS level by level in one run.
"$py" -m tapgate.cli bench --front-door both --hash none --users 1000 \
    --concurrency 1,10,50,200 --duration 15 --output "$out/front-doors"
# The throughput target's own case: the Auth API alone, against privacyIDEA without a PIN check.
"$py" -m tapgate.cli bench --hash none --users 1000 --concurrency 1,10,50,200 --duration 15 \
    --compare "$out/privacyidea-none/results.json" \
    --compare "$out/privacyidea-none-long/results.json" --output "$out/api-none"
"$py" -m tapgate.cli bench --skip-sweep --scale --duration 15 --output "$out/scale" --no-plot
# The LDAP first factor against a throwaway slapd (needs Debian's slapd and ldap-utils).
"$py" -m tapgate.cli bench --first-factor ldap --users 1000 --concurrency 1,50,200 \
    --ldap-concurrency 1,50 --duration 15 --output "$out/ldap" --no-plot
# The cluster run needs a PostgreSQL server where it may create and drop databases. One SQLite
# node runs first at the same levels, so the table compares both under the same machine load.
pg_url=${TAPGATE_BENCH_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
"$py" -m tapgate.cli bench --users 1000 --concurrency 10,50,200 --duration 15 \
    --output "$out/cluster-sqlite" --no-plot
"$py" -m tapgate.cli bench --cluster 1,2,3 --database-url "$pg_url" --users 1000 \
    --concurrency 10,50,200 --duration 15 --compare "$out/cluster-sqlite/results.json" \
    --output "$out/cluster"
