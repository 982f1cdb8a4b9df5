#!/bin/bash
# ab.sh ROUNDS RATES : W2 ladder, chatd-new with --publish-interval-ms 0 (old) vs 50 (new)
R=$1; RATES=$2
CHATD=/tmp/s8/chatd-new bash /tmp/s7/mktpl.sh w2 /tmp/s8/tpl-w2 > /tmp/s8/mktpl.log 2>&1
for r in $(seq 1 $R); do for v in old new; do
  case $v in old) X="--publish-interval-ms 0";; new) X="--publish-interval-ms 50";; esac
  TPL=/tmp/s8/tpl-w2 bash /tmp/s7/run2.sh /tmp/s8/chatd-new /tmp/s8/ab-$v-$r w2 "$RATES" 5 none $X > /dev/null 2>&1
  echo "$v $r done $(date +%T)"
done; done
for v in old new; do echo "== $v"; python3 /tmp/s7/ext.py $RATES /tmp/s8/ab-$v-*.json; done
