#!/usr/bin/env bash
# Install bbans and its test tools. torch==2.13.0 first when torch is missing: that pin installs the local CPU
# build, while a looser spec would pull the newest release with several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[test]"
