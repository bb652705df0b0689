#!/usr/bin/env bash
# Install privacyIDEA 3.14 and gunicorn into their own virtual environment, outside the
# repository, and lay out a work directory with its settings, keys and an empty SQLite database.
#
# Usage: bench/privacyidea/setup.sh [VENV] [WORKDIR]
#   VENV     default /work/bench-venvs/privacyidea
#   WORKDIR  default /tmp/pi-bench
set -euo pipefail

venv=${1:-/work/bench-venvs/privacyidea}
workdir=${2:-/tmp/pi-bench}

if [ ! -x "$venv/bin/pi-manage" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'privacyidea==3.14' gunicorn
fi

mkdir -p "$workdir"
# The driver rewrites pi.cfg for each password hash cost; this first version only creates the
# tables and keys.
python3 "$(dirname "$0")/picfg.py" "$workdir" fast
export PRIVACYIDEA_CONFIGFILE="$workdir/pi.cfg"
[ -f "$workdir/enckey" ] || "$venv/bin/pi-manage" setup create_enckey
[ -f "$workdir/private.pem" ] || "$venv/bin/pi-manage" setup create_audit_keys
"$venv/bin/pi-manage" setup create_tables
"$venv/bin/pi-manage" admin add benchadmin --password bench-admin-2026 2>/dev/null ||
    echo "administrator benchadmin exists already"
echo "privacyIDEA ready in $workdir (virtual environment $venv)"
