#!/bin/sh
# Runs examples/manager_server and three examples/manager_client programs against it.
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
"$client" "$address" abracadabra put "hello from another program"
echo "got: $("$client" "$address" abracadabra get)"
if "$client" "$address" wrong-key get 2>/dev/null; then echo "a wrong key was accepted"; exit 1; fi
"$client" "$address" abracadabra shutdown
wait $pid
cat "$out"
