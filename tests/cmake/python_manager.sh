#!/bin/sh
# Runs examples/python_manager_server and examples/python_manager_client.py (Debian's python3)
# against it; the client stops the server.
set -e
server=$1
client=$2
out=$(mktemp)
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
"$server" 127.0.0.1:0 abracadabra > "$out" &
pid=$!
for _ in $(seq 600); do
  grep -q "serving at" "$out" && break
  kill -0 $pid 2>/dev/null || { echo "the server ended"; exit 1; }
  sleep 0.1
done
address=$(sed -n 's/^serving at //p' "$out")
/usr/bin/python3 "$client" "$address" abracadabra
wait $pid
cat "$out"
