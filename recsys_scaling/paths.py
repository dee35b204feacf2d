"""Where the job configs and sweeps are: shipped with the package, plus the user's own sweeps.

In a source checkout they are the repository's top-level `conf/` and `sweeps/`; an installed
wheel carries the same files as `recsys_scaling/conf` and `recsys_scaling/sweeps` (see
pyproject.toml). A user's sweeps live in `./sweeps/` of the working directory, or in folders
given with `--sweeps-dir`; a user sweep with a built-in's name takes its place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Sequence

import yaml

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _shipped(name: str) -> Path:
    """The package's copy (installed wheel) if there is one, else the checkout's folder."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _CHECKOUT / name


CONF_DIR = _shipped("conf")
BUILTIN_SWEEPS_DIR = _shipped("sweeps")
SWEEP_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SweepFile:
    name: str
    path: Path
    origin: str  # "built-in", or the user folder it was found in

    @property
    def builtin(self) -> bool:
        return self.origin == "built-in"


def user_sweep_dirs(extra: Sequence[Path] = ()) -> List[Path]:
    """Folders searched before the built-ins: --sweeps-dir entries first, then ./sweeps."""
    for folder in extra:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--sweeps-dir {folder}: no such folder")
    dirs = [Path(d).resolve() for d in extra] + [Path.cwd().resolve() / "sweeps"]
    return [d for i, d in enumerate(dirs) if d not in dirs[:i] and d != BUILTIN_SWEEPS_DIR.resolve()]


def _sweeps_in(folder: Path, origin: str) -> Iterable[SweepFile]:
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix in SWEEP_SUFFIXES and path.is_file():
                yield SweepFile(path.stem, path.resolve(), origin)


def list_sweeps(extra_dirs: Sequence[Path] = ()) -> List[SweepFile]:
    """Every sweep the user can name: user folders first, built-ins last; a name defined twice
    appears once, from the first place it is found."""
    found: dict = {}
    for folder in user_sweep_dirs(extra_dirs):
        for sweep in _sweeps_in(folder, str(folder)):
            found.setdefault(sweep.name, sweep)
    for sweep in _sweeps_in(BUILTIN_SWEEPS_DIR, "built-in"):
        found.setdefault(sweep.name, sweep)
    return sorted(found.values(), key=lambda s: (s.builtin, s.name))


def find_sweep(name: str, extra_dirs: Sequence[Path] = ()) -> Path:
    """A sweep by name (user folders, then built-ins) or a path to a YAML file; its text is
    checked (a YAML mapping, readable, no key twice) before anything uses it."""
    if name.endswith(SWEEP_SUFFIXES) or "/" in name:
        path = Path(name)
        if path.is_file():
            return check_sweep_file(path.resolve())
        raise FileNotFoundError(f"sweep {name!r}: no such file")
    match = next((s for s in list_sweeps(extra_dirs) if s.name == name), None)
    if match is not None:
        return check_sweep_file(match.path)
    known = ", ".join(s.name for s in list_sweeps(extra_dirs))
    searched = ", ".join(str(d) for d in [*user_sweep_dirs(extra_dirs), BUILTIN_SWEEPS_DIR])
    raise FileNotFoundError(f"sweep {name!r}: not found in {searched}; known sweeps: {known} "
                            "(`recsys-scaling sweeps` lists them)")



class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (Hydra's
    loader reports it with a traceback, PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def check_sweep_file(path: Path) -> Path:
    """A sweep file Hydra can compose: UTF-8 YAML, a mapping, no key given twice, a file name that
    is a valid config name. Raises ValueError naming file:line."""
    if not path.stem.isascii() or not path.stem.replace("_", "a").replace("-", "a").isalnum():
        raise ValueError(f"{path}: a sweep's file name is its name in the store and in Hydra: use letters, digits, "
                         "- and _ (e.g. my_sweep.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#x} at offset {exc.start})") from None
    if not text.strip():
        raise ValueError(f"{path}: empty; a sweep extends `config` and sets hydra.sweeper.params (see "
                         f"{BUILTIN_SWEEPS_DIR / 'smoke.yaml'})")
    try:
        tree = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ValueError(f"{where}: {exc.problem or exc.context or 'not valid YAML'}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: a sweep file is a YAML mapping (defaults:, hydra: ...), not a "
                         f"{type(tree).__name__}")
    return path
