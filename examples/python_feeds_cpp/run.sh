#!/bin/sh
# Runs the example: the C++ program (a Listener and a Pool) in the background, then the Python
# script that feeds it and checks the results; the C++ side is killed if anything fails first.
# Usage: run.sh PROGRAM PYTHON SCRIPT
set -e
program=$1
python=$2
script=$3
key="python feeds cpp"
out=$(mktemp)
"$program" "$key" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 600); do
  grep -q "listening at" "$out" && break
  kill -0 $pid 2>/dev/null || { echo "the C++ program ended"; cat "$out"; exit 1; }
  sleep 0.1
done
address=$(sed -n 's/^listening at //p' "$out")
"$python" "$script" "$address" "$key"
wait $pid
cat "$out"
