#!/bin/bash
# prepare.sh <users> <groups> <group_size>: make sure chatd has users u0..u<N-1> (as bench_u<i>),
# groups g0..g<G-1> (users g*size .. g*size+size-1) and a direct conversation per pair (i, i^1).
# What is missing is created over REST, then the data dir is saved as the template that start.sh
# copies, and chatd is restarted from a fresh copy (so measured runs never include this setup).
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd)
export NODE_PATH="$D/../../node_modules"
if node "$D/prepare.js" "${1:-1000}" "${2:-20}" "${3:-100}"; then
  exit 0   # the template already had everything
else
  rc=$?
  [ $rc -eq 10 ] || exit $rc
fi
# prepare.js created something (exit 10): snapshot a cleanly stopped chatd as the new template
"$D/stop.sh"
rm -rf "$D/run/template.new" && mkdir -p "$D/run/template.new"
cp -a "$D/run/data" "$D/run/template.new/data"
cp "$D/run/map.json" "$D/run/template.new/map.json"
rm -rf "$D/run/template" && mv "$D/run/template.new" "$D/run/template"
"$D/start.sh"
