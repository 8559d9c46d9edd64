#!/bin/sh
# Runs examples/manager_server and three examples/manager_client programs against it.
set -e
client=$2
. "$(dirname "$0")/example_server.sh" "$1"
"$client" "$address" abracadabra put "hello from another program"
echo "got: $("$client" "$address" abracadabra get)"
if "$client" "$address" wrong-key get 2>/dev/null; then echo "a wrong key was accepted"; exit 1; fi
"$client" "$address" abracadabra shutdown
wait $pid
cat "$out"
