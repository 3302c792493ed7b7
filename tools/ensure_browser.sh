#!/usr/bin/env bash
# Install what the browser tests need (tests/test_book.py), when this machine can: Chromium
# ($CHROMIUM, else Debian's `chromium`) and npm (it fetches MathJax 3 once into
# ${REPRODL_TEST_CACHE:-~/.cache/reprodl-test}), with apt-get as root or with passwordless sudo.
# Prints one line when something is missing; never fails the caller (the tests skip, or fail
# under CI=true).
cache="${REPRODL_TEST_CACHE:-$HOME/.cache/reprodl-test}"
mathjax="$cache/mathjax3/node_modules/mathjax/es5/tex-mml-chtml.js"
have_chromium() { [ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; }
have_mathjax() { [ -f "$mathjax" ] || command -v npm >/dev/null 2>&1; }
if have_chromium && have_mathjax; then exit 0; fi

missing=()
have_chromium || missing+=(chromium)
have_mathjax || missing+=(npm)
if [ "$(id -u)" = 0 ]; then as_root=(env); else as_root=(sudo -n env); fi  # sudo: no password
if command -v apt-get >/dev/null 2>&1 && "${as_root[@]}" true >/dev/null 2>&1; then
  ("${as_root[@]}" apt-get update -qq \
    && "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
    >/dev/null 2>&1 && echo "installed ${missing[*]} (browser tests)" && exit 0
fi
echo "${missing[*]} not available: the browser tests will be skipped (fail under CI=true);" \
  "to run them: apt-get install ${missing[*]} as root (or set CHROMIUM=/path/to/chrome)"
