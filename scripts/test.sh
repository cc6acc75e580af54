#!/usr/bin/env bash
# Sets the host up (idempotent), checks format/lint and types, runs the whole test suite against
# real servers and real machines, then checks the host holds nothing the suite made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo
echo "==> unit tests (no root, no machines)"
# Seconds, and a broken validator fails here rather than after minutes of machines.
node scripts/test-unit.mjs --test-reporter=spec

# The template tests build with a Debian package and the server set to build offline (tests reach
# nothing outside the host): fetch it into the package cache now, as set-up (once; cached after).
node scripts/fetch-packages.mjs jq

echo
echo "==> lint (biome)"
npx biome ci .

echo
echo "==> leftovers before the suite"
before=$(bash scripts/host-leftovers.sh)

echo
echo "==> tests"
# One file at a time: each starts its own servers and machines on a 2-core host. A failure here
# does not skip the Python suite: both answers are worth having from one run.
failed=()
# No test may hang the run: one that takes 10 minutes fails (the slowest take about 30 s here).
node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec test/dist/*.test.js ||
  failed+=("the TypeScript suite")

echo
echo "==> Python SDK tests (pytest)"
# The Debian pytest, against the same kind of real servers; exit code 5 (no tests collected) is
# a failure like any other non-zero code.
set +e
(cd python && /usr/bin/python3 -m pytest -p no:cacheprovider -ra tests)
py_status=$?
set -e
if [ "$py_status" -ne 0 ]; then
  [ "$py_status" -eq 5 ] && echo "pytest collected no tests" >&2
  failed+=("the Python SDK tests (pytest exit $py_status)")
fi

echo
echo "==> leftovers after the suite"
after=$(bash scripts/host-leftovers.sh)
new=$(comm -13 <(echo "$before" | sort) <(echo "$after" | sort) | sed '/^$/d')
if [ -n "$new" ]; then
  echo "the suite left these behind:" >&2
  echo "$new" >&2
  failed+=("the leftovers check")
else
  echo "nothing left behind"
fi
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
