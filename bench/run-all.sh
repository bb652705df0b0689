#!/usr/bin/env bash
# Run the benchmark that docs/benchmarks.md reports: privacyIDEA's sweep, then tapgate's sweep
# with privacyIDEA's levels merged into its table and plot, then tapgate's scale run.
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
"$py" -m tapgate.cli bench --hash both --users 1000 --concurrency 1,10,50,200 --duration 15 \
    --compare "$out/privacyidea/results.json" --compare "$out/privacyidea-long/results.json" \
    --output "$out/sweep"
"$py" -m tapgate.cli bench --skip-sweep --scale --duration 15 --output "$out/scale" --no-plot
