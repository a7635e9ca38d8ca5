"""The `drscreen` command: `drscreen <command> [--flag=value ...]`.

Each command is a module of this package defining its absl flags and a `main(argv)`.
Only the chosen command's module is imported, freshly on every call, so commands never see
each other's flags nor a previous call's values, also when several run in one process
(tests, notebooks). Commands parse flags into a config and call the library; they hold no
logic of their own. TensorFlow's log noise is silenced once, here (`terminal`).
"""

import importlib
import sys

from absl import app, flags

from drscreen.cli.terminal import quiet_tensorflow

COMMANDS = {
    "synth": "Generate the synthetic fundus benchmark.",
    "prepare": "Convert a dataset into sharded TFRecords with a manifest.",
    "export": "Export a trained model: SavedModel (TF Serving), TFLite, ONNX.",
    "serve": "Serve an exported model over TensorFlow Serving's gRPC and REST APIs.",
    "predict": "Grade fundus photographs and save heatmap overlays.",
    "evaluate": "Evaluate a model on a dataset: metrics.json, figures and report.",
}


def _usage() -> str:
    lines = ["usage: drscreen <command> [--flag=value ...]   (drscreen <command> --help)", ""]
    lines += [f"  {name:<10} {summary}" for name, summary in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        print(f"drscreen: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    quiet_tensorflow()
    _forget_loaded_commands()
    module = importlib.import_module(f"drscreen.cli.{command}")
    if any(arg in HELP_FLAGS for arg in argv[2:]):
        print(command_help(command, module.__name__, module.__doc__ or ""))
        sys.exit(0)
    app.run(module.main, argv=[f"drscreen {command}", *argv[2:]])


HELP_FLAGS = ("-h", "--help", "-help", "--helpshort")


def command_help(command: str, module_name: str, doc: str) -> str:
    """A command's help: its summary and usage (the module docstring), then each of its own
    flags with its help text and default (absl's ``--help`` lists only the flags of the
    program's main module, which are none for ``drscreen``)."""
    own = flags.FLAGS.module_help(module_name).strip()
    listed = own.split("\n", 1)[1] if "\n" in own else "  (none)"
    summary = doc.strip() or f"drscreen {command}: {COMMANDS[command]}"
    return f"{summary}\n\nflags:\n{listed}\n\nabsl and TensorFlow flags: --helpfull"


def _forget_loaded_commands() -> None:
    """Unload every command module imported before, with the flags it defined."""
    for name in [name for name in sys.modules if name.startswith(f"{__name__}.")]:
        for flag in flags.FLAGS.get_flags_for_module(name):
            delattr(flags.FLAGS, flag.name)
        del sys.modules[name]
