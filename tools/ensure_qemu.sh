#!/usr/bin/env bash
# Install QEMU's user-mode emulator (Debian package qemu-user) for the emulated-CPU tests, when
# this machine can: root with apt-get. Prints one line either way; never fails the caller.
if command -v qemu-x86_64 >/dev/null 2>&1; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user) >/dev/null 2>&1 \
    && echo "installed qemu-user (emulated-CPU tests)" && exit 0
fi
echo "qemu-x86_64 not available: the emulated-CPU tests will be skipped (fail under CI=true)"
