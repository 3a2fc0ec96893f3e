#!/bin/sh
# Builder. Asks rpmbuild whether the build dependencies, dynamic ones included, are installed.
# Exit 0: they are; 11: some are missing (listed in SRPMS/*.buildreqs.nosrc.rpm when dynamic).
set -eu
rm -f /build/work/SRPMS/*.buildreqs.nosrc.rpm
exec rpmbuild -br "$(cat /build/work/spec.path)"
