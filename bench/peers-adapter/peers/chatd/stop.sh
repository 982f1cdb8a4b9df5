#!/bin/bash
D=$(cd "$(dirname "$0")" && pwd)
. "$D/../common.sh"
stop_pid "$D/run/server.pid" 20
echo "chatd stopped"
