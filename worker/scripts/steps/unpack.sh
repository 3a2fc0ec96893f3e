#!/bin/sh
# Root, no network. Unpacks the build input from stdin into /build and hands it to the builder.
set -eu
tar -x -C /build
mkdir -p /build/work
chown -R builder:builder /build/in /build/work
