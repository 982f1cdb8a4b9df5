#!/bin/bash
# series.sh TAG REPS "RATES" "BINS" -- interleaved W2 runs with perf stat (STEP 8 s, perf 2..5 s)
# BINS: base (/tmp/chatd-base), new (chatd-new, defaults), off (new, --commit-window-us 0),
#       nNNN (new, --commit-window-us NNN)
TAG=$1; REPS=${2:-3}; RATES=${3:-"1000 4000 8000 16000"}; BINS=${4:-"base new"}
cd /tmp/s3-commit
export PERF_DELAY=2
for rep in $(seq $REPS); do
  for rate in $RATES; do
    order=$BINS; [ $((rep % 2)) = 0 ] && order=$(echo $BINS | tr ' ' '\n' | tac | tr '\n' ' ')
    for b in $order; do
      case $b in
        base) bin=/tmp/chatd-base; extra= ;;
        new) bin=/tmp/s3-commit/chatd-new; extra= ;;
        off) bin=/tmp/s3-commit/chatd-new; extra="--commit-window-us 0" ;;
        n*) bin=/tmp/s3-commit/chatd-new; extra="--commit-window-us ${b#n}" ;;
      esac
      out=runs/$TAG-$b-$rate-$rep
      echo "== $(date -u +%T) $out load $(cut -d' ' -f1 /proc/loadavg)"
      ./run1.sh $bin $out w2 $rate 8 stat $extra
    done
  done
done
