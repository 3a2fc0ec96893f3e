#!/bin/sh
# Builder, network off. Runs rpmbuild on the prepared spec.
#   $1: -ba (source and binaries)
set -eu
cd /build/work
echo "[perestroika] rpmbuild $1 (SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-from the spec's changelog})"
exec rpmbuild "$1" "$(cat /build/work/spec.path)"
