# Shared by scripts/demo, scripts/test and scripts/bench: make sure .venv exists
# and has fslog installed (editable) with the requested extras.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS like "" or "test" or "test,bench")
set -euo pipefail
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT_DIR/.venv"
extras="${1:-}"
stamp="$VENV/.fslog-installed-${extras:-base}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "setting up .venv ..." >&2
    python3 -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$ROOT_DIR/pyproject.toml" -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    if [ -n "$extras" ]; then
        "$VENV/bin/python" -m pip install -q -e "$ROOT_DIR[$extras]" --config-settings editable_mode=compat >&2
    else
        "$VENV/bin/python" -m pip install -q -e "$ROOT_DIR" --config-settings editable_mode=compat >&2
    fi
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
