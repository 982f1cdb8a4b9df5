#!/bin/bash
# ab3.sh ROUNDS RATES VARIANTS... (variant = /tmp/s8/chatd-<v>), publish 200
R=$1; RATES=$2; shift 2
CHATD=/tmp/s8/chatd-new bash /tmp/s7/mktpl.sh w2 /tmp/s8/tpl-w2 > /tmp/s8/mktpl.log 2>&1
for r in $(seq 1 $R); do for v in "$@"; do
  TPL=/tmp/s8/tpl-w2 bash /tmp/s7/run2.sh /tmp/s8/chatd-$v /tmp/s8/ab3-$v-$r w2 "$RATES" 5 none --publish-interval-ms ${PUB:-200} > /dev/null 2>&1
done; done
for v in "$@"; do echo "== $v"; python3 /tmp/s7/ext.py $RATES /tmp/s8/ab3-$v-*.json; done
