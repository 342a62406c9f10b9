#!/usr/bin/env bash
# The interpreter of this workspace's Python toolchain (//tools/python): every
# py_binary/py_test runs <workspace>/.venv/bin/python through this script. Bazel
# starts it from a runfiles tree (or a test sandbox) through symlinks that end at
# this file in the source tree, so `readlink -f "$0"` finds the workspace. A
# missing or stale .venv is (re)built first by tools/ensure_venv.sh, the code
# ./bazelw runs too (within a test sandbox the workspace is read-only: there
# the @tilt_venv repository rule, tools/python/venv.bzl, has built it already).
self="$(readlink -f "$0")"
root="${self%/tools/python/python3.sh}"
if [[ $root == "$self" || ! -f $root/requirements.txt ]]; then
  echo "tools/python/python3.sh: cannot find the workspace from $0 ($self)" >&2
  exit 1
fi
# shellcheck source=../ensure_venv.sh
source "$root/tools/ensure_venv.sh"
if ! venv_fresh; then
  ensure_venv || exit 1
fi
exec "$root/.venv/bin/python" "$@"
