#!/bin/sh
# Root, network on. Unpacks the build input from stdin into /build and hands it to the builder.
set -eu
tar -x -C /build
chown -R builder:builder /build/in
