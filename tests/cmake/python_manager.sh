#!/bin/sh
# Runs examples/python_manager_server and examples/python_manager_client.py (Debian's python3)
# against it; the client stops the server.
set -e
client=$2
. "$(dirname "$0")/example_server.sh" "$1"
/usr/bin/python3 "$client" "$address" abracadabra
wait $pid
cat "$out"
