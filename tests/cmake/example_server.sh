# Sourced by the example runners: starts the server example $1 (the runner's first argument)
# on 127.0.0.1 (a free port) with the key abracadabra, waits for its "serving at" line and sets
# $pid, $out and $address. The server is killed and its output removed when the runner exits.
out=$(mktemp)
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
"$1" 127.0.0.1:0 abracadabra > "$out" &
pid=$!
for _ in $(seq 600); do
  grep -q "serving at" "$out" && break
  kill -0 $pid 2>/dev/null || { echo "the server ended"; exit 1; }
  sleep 0.1
done
address=$(sed -n 's/^serving at //p' "$out")
