#!/bin/sh
# No-op stand-in for Bazel's coverage tools (offline stub).
exit 0
