#!/bin/sh
# Builder. Writes a tar of the build's results (every file beside the tree) to stdout. The
# names are the build's own: passed NUL-separated and verbatim, so that none is read as an
# option of tar.
set -eu
cd /build/work
find . -maxdepth 1 -type f -printf '%f\0' | sort -z \
  | tar -c -f - --no-recursion --null --verbatim-files-from -T -
