#!/bin/sh
# Root. Writes a tar of the build's results (every file beside the tree) to stdout.
set -eu
cd /build/work
find . -maxdepth 1 -type f -printf '%f\n' | sort | tar -c -f - -T -
