"""`recsys-scaling`: dispatch to a subcommand; every user error is one line and an exit status."""
from __future__ import annotations

import errno
import sys
from typing import List, Optional

from ..logs import setup_console
from ..runtime import Terminated, install_interrupt_handler, stop_children, tune_allocator
from .advise import cmd_advise
from .commands import cmd_budget, cmd_data, cmd_report, cmd_store, cmd_sweep, cmd_sweeps, cmd_train, cmd_tune
from .parser import build_parser
from .serve import cmd_server, cmd_ui

MAX_ERROR_LENGTH = 400


def _error_line(command: str, exc: BaseException) -> str:
    """`recsys-scaling <command>: error: <message>` on one bounded line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)  # escapes, e.g. \x00
    if len(text) > MAX_ERROR_LENGTH:
        text = text[: MAX_ERROR_LENGTH - 20] + f" ... ({len(text)} characters)"
    return f"recsys-scaling {command}: error: {text}"


def os_error_text(exc: OSError) -> str:
    """'no space left on device: /data/cache/X.npy' — what went wrong, and where."""
    text = exc.strerror[:1].lower() + exc.strerror[1:] if exc.strerror else str(exc)
    if exc.filename:
        text += f": {exc.filename}"
    hint = {errno.ENOSPC: "free some space, or point the folder elsewhere",
            errno.EROFS: "the folder is read-only; point it at a writable one",
            errno.EACCES: "no permission; point it at a folder you can write",
            errno.EDQUOT: "disk quota exceeded; free some space"}.get(exc.errno, "")
    return text + (f" ({hint})" if hint else "")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    install_interrupt_handler()
    try:
        return _dispatch(argv)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as exc:
        stopped = stop_children()
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        also = f"; {stopped} process(es) it started stopped" if stopped else ""
        print(f"recsys-scaling {command}: {how}; a running job's run is marked KILLED and its checkpoint "
              f"kept{also}: run the same command again to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except (FileNotFoundError, LookupError, ValueError) as exc:
        print(_error_line(command, exc), file=sys.stderr)
        return 2
    except ConnectionError as exc:  # the tracking store stopped answering (tracking.StoreUnreachable)
        print(_error_line(command, exc), file=sys.stderr)
        return 3
    except OSError as exc:  # the machine, not the input: a full disk, a read-only folder, no permission
        print(_error_line(command, os_error_text(exc)), file=sys.stderr)
        return 1


def _dispatch(argv: List[str]) -> int:
    if argv[:1] == ["train"]:  # everything after `train` is Hydra's: overrides, --cfg job, ...
        tune_allocator()
        setup_console(verbose=True)  # a training run's epochs are its progress
        return cmd_train(argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Hydra overrides may follow options (`sweep demo --force seed=0,1`): argparse leaves them over.
    unknown = [a for a in extra if a.startswith("-")]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    if args.command != "data":  # preparing data keeps to data.prepare_memory: no memory held back
        tune_allocator()
    setup_console(getattr(args, "verbose", False))
    commands = {"sweep": lambda: cmd_sweep(args),
                "sweeps": lambda: cmd_sweeps(args.sweeps_dir),
                "budget": lambda: cmd_budget(args),
                "tune": lambda: cmd_tune(args),
                "ui": lambda: cmd_ui(args),
                "server": lambda: cmd_server(args),
                "store": lambda: cmd_store(args),
                "data": lambda: cmd_data(args.action, args.overrides, args.sweeps_dir),
                "report": lambda: cmd_report(args),
                "advise": lambda: cmd_advise(args)}
    return commands[args.command]()

