#!/usr/bin/env bash
# Two fresh-clone CI runs in a row while two busy processes load both cores (issue 24, point 10).
set -u
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
COMMIT=$(git -C "$REPO" rev-parse HEAD)
OUT=/tmp/loadci; mkdir -p $OUT
echo "commit $COMMIT" > $OUT/summary.txt
yes > /dev/null & B1=$!
python3 -c 'while True: pass' & B2=$!
echo "busy pids $B1 $B2" >> $OUT/summary.txt
( while true; do echo "$(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 60; done ) > $OUT/loadavg.txt & L=$!
for i in 1 2; do
  rm -rf /tmp/ci$i; git clone -q "$REPO" /tmp/ci$i && git -C /tmp/ci$i checkout -q $COMMIT
  s=$(date +%s)
  ( cd /tmp/ci$i && CI=true bash .ci/run ) > $OUT/run$i.log 2>&1
  rc=$?
  e=$(date +%s)
  echo "run $i rc=$rc wall=$((e-s))s start=$(date -u -d @$s +%T) end=$(date -u -d @$e +%T)" >> $OUT/summary.txt
  tail -3 $OUT/run$i.log >> $OUT/summary.txt
  [ $rc -ne 0 ] && break
done
kill $B1 $B2 $L
echo done >> $OUT/summary.txt
