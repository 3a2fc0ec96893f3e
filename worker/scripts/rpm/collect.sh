#!/bin/sh
# Builder. Writes a tar of the build's packages to stdout: every binary rpm, and the source rpm
# (the one given, for a source rpm build). Names are passed NUL-separated and verbatim, so that
# none is read as an option of tar.
#   $1: layout ("tree" or "srpm")
set -eu
out=/build/out
mkdir -p $out
find /build/work/RPMS -name '*.rpm' -exec cp -- {} $out/ \;
if [ "$1" = srpm ]; then
  cp -- "$(cat /build/work/srpm.path)" $out/
else
  find /build/work/SRPMS -name '*.src.rpm' -exec cp -- {} $out/ \;
fi
cd $out
find . -maxdepth 1 -type f -printf '%f\0' | sort -z \
  | tar -c -f - --no-recursion --null --verbatim-files-from -T -
