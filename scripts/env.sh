# Sourced by the other scripts: where the project's Python environment and build live.
# The environment is kept outside the checkout so that fresh clones (CI's) reuse it.
FORESIGHT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FORESIGHT_VENV=${FORESIGHT_VENV:-$HOME/.cache/foresightkv/venv}
FORESIGHT_BUILD=${FORESIGHT_BUILD:-$FORESIGHT_ROOT/build}
export FORESIGHT_BIN=$FORESIGHT_BUILD/bin
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/foresightkv/ccache}
