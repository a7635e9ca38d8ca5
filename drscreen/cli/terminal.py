"""A terminal that shows drscreen's messages, not TensorFlow's: set once, at the entry points.

`quiet_tensorflow` is called by the ``drscreen`` command and by ``scripts/*.py`` before
anything imports TensorFlow. On a machine without a GPU, TensorFlow's start-up prints a CUDA
stub notice, a oneDNN notice and a failed ``cuInit`` at error level; grappler logs errors of
graph rewrites it skips. None of them is a problem of the user's, and
they bury drscreen's own messages and progress lines. Set ``TF_CPP_MIN_LOG_LEVEL`` yourself
(e.g. to 0) to see everything again: `quiet_tensorflow` then changes nothing.
"""

import logging
import os
import sys
import tempfile

_QUIETED = "DRSCREEN_QUIET_TENSORFLOW"


def quiet_tensorflow() -> None:
    """Import TensorFlow quietly and keep its C++ log lines off the terminal.

    Unless the user set ``TF_CPP_MIN_LOG_LEVEL``: sets it to 3 (no C++ info, warning or
    error lines: TensorFlow reports what matters to a caller as Python exceptions), marks the
    environment so that worker processes re-running the entry point do the same, puts the
    ``tensorflow`` Python logger at ERROR, and imports TensorFlow with the process's standard
    error sent to a temporary file, since its start-up lines are written before absl logging
    is initialised, where no log level reaches them. If the import fails, what it wrote is
    replayed on standard error before the exception propagates.
    """
    if "tensorflow" in sys.modules:
        return
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ and os.environ.get(_QUIETED) != "1":
        return  # the user's own level
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ[_QUIETED] = "1"  # worker processes re-running the entry point stay quiet too
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
