#!/bin/sh
# Runs a manager server example ($1) on a free port of 127.0.0.1, then the client command given
# after it with the server's HOST:PORT and key; the client stops the server. Prints the server's
# output last.
#   serve_and_run.sh SERVER CLIENT [ARGS...]
set -e
. "$(dirname "$0")/example_server.sh"
shift
"$@" "$address" abracadabra
wait $pid
cat "$out"
