#!/usr/bin/env bash
# Creates (once) the Python environment of the real-user-space test layer and prints its directory.
# The environment is keyed by the hash of requirements.txt and kept under the user's cache directory
# (${XDG_CACHE_HOME:-~/.cache}/emuv/realsw/<hash>/venv), with pip's download cache beside it, so a warm
# run costs nothing and a changed pin builds a new one. A marker file is written last: an interrupted
# install is found incomplete and rebuilt, never used half-made.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
req=$here/requirements.txt
py=${EMUV_REALSW_PYTHON:-python3}
ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$ver" != "3.11" ]; then
  echo "test/realsw: needs CPython 3.11 (the wheels in requirements.txt are cp311); $py is $ver." >&2
  echo "  Set EMUV_REALSW_PYTHON to a python3.11 (Debian 12: apt-get install python3 python3-venv)." >&2
  exit 1
fi
hash=$(sha256sum "$req" | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/emuv/realsw
dir=$cache/$hash
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir"
  mkdir -p "$dir" "$cache/pip"
  echo "test/realsw: creating the environment $dir (about 3 GB of wheels the first time)" >&2
  start=$(date +%s)
  "$py" -m venv "$dir/venv"
  # --only-binary: nothing is compiled here; --require-hashes: every file is the one pinned.
  PIP_CACHE_DIR=$cache/pip "$dir/venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --only-binary=:all: --require-hashes -r "$req" >&2
  touch "$dir/.complete"
  echo "test/realsw: environment ready in $(($(date +%s) - start)) s" >&2
fi
echo "$dir/venv"
