"""Runs the interop scripts under tests/interop/.venv (made by scripts/test-deps.sh), whatever
interpreter started them (e.g. the shebang's python3): both verify.py and livekit_standin.py need the
pinned livekit-api there."""

import os
import sys

VENV = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv")


def reexec_in_venv(script: str) -> None:
    """Replace this process with `script` run by the venv's interpreter, unless it already runs there."""
    venv_python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV) and os.path.exists(venv_python):
        os.execv(venv_python, [venv_python, os.path.abspath(script), *sys.argv[1:]])
