#!/bin/sh
# Every package of the build root, `name version arch` per line: the rpm database and, on a
# root made from Debian, the Debian packages behind it.
{
  if command -v dpkg-query >/dev/null; then
    dpkg-query -W -f='${Package} ${Version} ${Architecture}\n'
  fi
  rpm -qa --qf '%{NAME} %{EVR} %{ARCH}\n'
} | LC_ALL=C sort
