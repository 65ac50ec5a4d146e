"""Run a Cronium Python script with the runtime helpers available.

Usage: ``python3 cronium_run.py SCRIPT [ARGS...]``

The ``cronium`` helper module is imported and published as a builtin, so the
script can call ``cronium.getVariable(...)`` with no import (``import cronium``
returns the same module). The script then runs as ``__main__`` with
``sys.argv``, ``sys.path[0]`` and ``__file__`` as ``python3 SCRIPT ARGS...``
would set them, and a traceback shows only the script's own frames.
"""

import builtins
import os
import runpy
import sys


def main() -> None:
    if len(sys.argv) < 2:
        sys.stderr.write("usage: cronium_run.py SCRIPT [ARGS...]\n")
        sys.exit(2)
    helpers_dir = os.path.dirname(os.path.abspath(__file__))
    script = os.path.abspath(sys.argv[1])

    if helpers_dir not in sys.path:
        sys.path.insert(0, helpers_dir)
    import cronium

    builtins.cronium = cronium  # type: ignore[attr-defined]

    # Look like `python3 SCRIPT`: the script's folder first on sys.path (the
    # helpers stay importable from the end of it) and argv[0] the script.
    if sys.path and sys.path[0] == helpers_dir:
        sys.path[0] = os.path.dirname(script)
    else:
        sys.path.insert(0, os.path.dirname(script))
    if helpers_dir not in sys.path:
        sys.path.append(helpers_dir)
    sys.argv = [script, *sys.argv[2:]]

    try:
        runpy.run_path(script, run_name="__main__")
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        # Drop the frames of this bootstrap and of runpy from the traceback.
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        sys.exit(1)


if __name__ == "__main__":
    main()
