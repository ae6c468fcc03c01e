"""What every command shares: the consoles, the one-line errors, progress bars, the command and
group classes (help as a newcomer expects it, and the old spellings of renamed options).

Nothing here imports torch or a library stage: ``regtracks --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = [
    "stderr",
    "stdout",
    "fail",
    "info",
    "warn",
    "handle_errors",
    "progress_bar",
    "in_kbp",
    "plural",
    "hub_hint",
    "tracks_notes",
    "command",
    "Bundle",
    "Group",
    "rename_args",
    "rich_progress",
    "use_threads",
]

Progress = Callable[[int, int, str], None]
"""The shape of every counted progress report in regtracks: ``progress(done, total, label)``."""


def stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def stdout():
    from rich.console import Console

    return Console(highlight=False)


def fail(msg: str, code: int = 1):
    """One red ``error:`` line on stderr, then exit ``code``."""
    from rich.markup import escape

    # escaped: a message may hold brackets (a file name, a region) that rich would take as markup
    stderr().print(f"[bold red]error:[/bold red] {escape(msg)}", soft_wrap=True)
    raise typer.Exit(code)


def use_threads(
    threads: int, device: str, *, workers: int | None = None, writers: int | None = None
):
    """Decide this command's threads, workers and writers (:func:`regtracks.runtime.plan_threads`)
    from ``--threads`` and set torch's threads; returns the plan."""
    import torch

    from regtracks.runtime import apply_threads, plan_threads

    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    plan = plan_threads(
        threads, workers=workers, writers=writers, device_type="cuda" if cuda else "cpu"
    )
    apply_threads(plan)
    return plan


def info(msg: str) -> None:
    stderr().print(msg, soft_wrap=True)


def warn(msg: str) -> None:
    """One yellow ``warning:`` line on stderr."""
    from rich.markup import escape

    stderr().print(f"[yellow]warning:[/yellow] {escape(msg)}", soft_wrap=True)


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: the file it names first, then the cause ("no space left on
    device" when the disk is full, whatever the C library said)."""
    from regtracks._util import _WRITE_ERRNOS, write_cause

    name = getattr(exc, "filename", None)
    cause = exc.strerror or str(exc)
    if exc.errno in _WRITE_ERRNOS:
        cause = write_cause(name or ".", exc) or cause
    return f"{name}: {cause}" if name else cause


def handle_errors(fn):
    """Turn user errors into one line and exit 1; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from regtracks._util import RegtracksError

        try:
            return fn(*args, **kwargs)
        except RegtracksError as exc:
            fail(str(exc))
        except OSError as exc:  # a file the library opened without a check of its own
            fail(os_error_line(exc))
        except KeyboardInterrupt:
            stderr().print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    return wrapper


def time_left(elapsed: float | None, done: float, total: float | None) -> float | None:
    """Seconds left at the mean pace so far: ``done`` units in ``elapsed`` seconds, ``total``
    in all (None: unknown, nothing done yet, or no time elapsed)."""
    if total is None or not elapsed or elapsed <= 0 or done <= 0:
        return None
    return max(total - done, 0) * elapsed / done


def hms(seconds: float) -> str:
    """``H:MM:SS`` (rounded up: a last second left shows 0:00:01)."""
    minutes, secs = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"


@functools.cache
def _time_left_column():
    from rich.progress import ProgressColumn
    from rich.text import Text

    class TimeLeftColumn(ProgressColumn):
        """``H:MM:SS left`` at the mean pace since the bar started (:func:`time_left`): known
        from the first update on, and steady when updates are far apart. (rich's own column
        estimates from the updates of the last 30 s and shows ``-:--:--`` until two fall
        within them: forever for a training run logging every 10 steps of 4 s each.) Blank
        while the total or the pace is unknown: the elapsed time beside it counts on.

        A task's ``done_before`` field is what it started from (the step a resumed run starts
        at); a count that falls (a new stage) starts the pace afresh.
        """

        max_refresh = 0.5

        def __init__(self):
            super().__init__()
            self._since: dict = {}  # task id -> (elapsed, done) the pace is measured from

        def render(self, task) -> Text:
            style = "progress.remaining"
            if task.finished:
                return Text("", style=style)
            elapsed = task.elapsed or 0.0
            t0, d0, last = self._since.get(task.id, (0.0, task.fields.get("done_before", 0), 0))
            if task.completed < last:
                t0, d0 = elapsed, task.completed
            self._since[task.id] = (t0, d0, task.completed)
            total = None if task.total is None else task.total - d0
            left = time_left(elapsed - t0, task.completed - d0, total)
            return Text("" if left is None else f"{hms(left)} left", style=style)

    return TimeLeftColumn


def rich_progress(field: str, *, console=None, transient: bool = False):
    """A rich ``Progress``: description, bar, done/total, the task's ``field``, time elapsed
    and time left (see :func:`time_left`)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[{field}]}}"),
        TimeElapsedColumn(),
        _time_left_column()(),
        console=console or stderr(),
        transient=transient,
    )


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    """A rich progress bar on stderr; yields ``update(done, total, label)``.

    Logs and pipes (stderr not a terminal) get no bar and no stray blank line.
    """
    console = stderr()
    if not console.is_terminal:
        yield lambda done, total, label: None
        return
    with rich_progress("label", console=console, transient=True) as bar:
        task = bar.add_task(description, total=None, label="")

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, label=str(label))

        yield update


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and ``word`` in the number ``n`` asks for: ``1 step``, ``2 steps``, ``2 processes``
    (``many``: the plural when it is not ``word + "s"``)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def in_kbp(update: Progress) -> Progress:
    """``update`` for work counted in bases, shown in kbp (``label (kbp)``)."""
    return lambda done, total, label: update(done // 1000, max(total // 1000, 1), f"{label} (kbp)")


def hub_hint(hub: Path) -> None:
    """Where a hub was written and how to look at it."""
    info(f"hub: {hub / 'hub.txt'}; IGV desktop: File > Open Session > {hub / 'igv_session.xml'}")
    info(f"browse it: regtracks serve {hub}   (then open the igv.html URL it prints)")


def tracks_notes(res, hub: Path, stitched: str) -> None:
    """After tracks were written into ``hub``: the note for models without a finite receptive
    field (``stitched`` what is then approximate), and where the hub is, when it was built."""
    if not res.exact:
        info(
            "[yellow]note:[/yellow] this model sees the whole window (no finite receptive "
            f"field): stitched {stitched} approximate one long input"
        )
    if res.hub is not None:
        hub_hint(Path(hub))


# --- help as a newcomer expects it ---------------------------------------------------------
class _Help:
    """Flags display as flags (no ``<bool>`` type) and the usage line names arguments as
    ``RUN`` / ``[RUN]`` (not ``{run}``)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""  # the type column stays empty
        return params

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if p.param_type_name != "argument":
                continue
            name = (p.metavar or p.name).upper()
            name = name if p.required else f"[{name}]"
            pieces.append(name + ("..." if p.nargs != 1 else ""))
        if getattr(self, "subcommand_metavar", None):
            pieces.append(self.subcommand_metavar)
        return pieces


class Group(_Help, TyperGroup):
    """A command group (``regtracks``, ``regtracks data``, ``regtracks hub``)."""


def rename_args(args: Sequence[str], renamed: dict[str, str]) -> tuple[list[str], list[str]]:
    """Map the old spellings ``renamed`` (old -> new) in ``args`` to the new ones.

    Handles ``--old value``, ``--old=value`` and, for a short ``-x``, ``-xVALUE``; nothing after
    ``--``. Returns the new argument list and the old spellings met (each once, in order).
    """
    out: list[str] = []
    met: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        new = arg
        for old, spelling in renamed.items():
            if arg == old:
                new = spelling
            elif old.startswith("--") and arg.startswith(old + "="):
                new = spelling + arg[len(old) :]
            elif not old.startswith("--") and arg.startswith(old) and not arg.startswith("--"):
                new = f"{spelling}={arg[len(old) :]}"
            else:
                continue
            if old not in met:
                met.append(old)
            break
        out.append(new)
    return out, met


def flag_value(args: Sequence[str], flag: str, opts: Sequence[str]) -> list[str]:
    """``FLAG VALUE`` and ``FLAG=VALUE`` -> ``FLAG OPT VALUE``: a flag followed by a value (an
    argument that is no option) hands it to the option spelled ``opts`` (``opts[0]`` is
    written): ``train --resume RUN`` is ``train --resume --out RUN``. A bare flag stays a flag;
    nothing after ``--`` changes. Exits 2 with one line when the option is given as well."""
    out: list[str] = []
    handed = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith(flag + "="):
            handed = arg[len(flag) + 1 :]
            out += [flag, opts[0], handed]
        elif arg == flag and i + 1 < len(args) and not args[i + 1].startswith("-"):
            handed = args[i + 1]
            out += [flag, opts[0], handed]
            i += 1
        else:
            out.append(arg)
        i += 1
    if handed is not None:
        longs = tuple(o + "=" for o in opts if o.startswith("--"))
        shorts = tuple(o for o in opts if not o.startswith("--"))
        rest = out[: out.index("--")] if "--" in out else out
        given = [a for a in rest if a in opts or a.startswith(longs) or a.startswith(shorts)]
        if len(given) > 1:
            fail(f"{flag} {handed} stands for {opts[0]} {handed}: give one of them, not both", 2)
    return out


class Command(_Help, TyperCommand):
    """A command; ``renamed`` maps old spellings of its options to the new ones, and
    ``flag_values`` flags that may take a value to the option that value is for (see
    :func:`flag_value`).

    An old spelling still works for one release: it prints one yellow line
    ``warning: --X is deprecated, use --Y`` on stderr and stands for the new option.
    """

    renamed: dict[str, str] = {}
    flag_values: dict[str, str] = {}

    def __init__(self, *args, **kwargs):
        if self.renamed and not kwargs.get("epilog"):
            pairs = ", ".join(f"{old} is now {new}" for old, new in self.renamed.items())
            still = "spellings still work" if len(self.renamed) > 1 else "spelling still works"
            kwargs["epilog"] = f"Renamed: {pairs} (the old {still}, with a warning)."
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        args, met = rename_args(args, self.renamed)
        for old in met:
            warn(f"{old} is deprecated, use {self.renamed[old]}")
        for flag, target in self.flag_values.items():
            [opts] = [p.opts for p in self.params if target in p.opts]
            args = flag_value(args, flag, opts)
        return super().parse_args(ctx, args)


class Bundle:
    """Base of the option bundles (frozen dataclasses in :mod:`regtracks.cli.options`): options
    that several commands take together, declared once.

    A command parameter annotated with a bundle (``data: DataOptions``) stands for every field
    of it: ``--help`` lists them in its place, and the command receives the dataclass.
    """


def _bundles(fn):
    """``fn`` with each bundle parameter expanded into its options (see :class:`Bundle`)."""
    sig = inspect.signature(fn, eval_str=True)
    bundles = {
        n: p.annotation
        for n, p in sig.parameters.items()
        if isinstance(p.annotation, type) and issubclass(p.annotation, Bundle)
    }
    if not bundles:
        return fn
    params = []
    taken = {n for n in sig.parameters if n not in bundles}
    for p in sig.parameters.values():
        if p.name not in bundles:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        hints = typing.get_type_hints(bundles[p.name], include_extras=True)
        for f in dataclasses.fields(bundles[p.name]):
            if f.name in taken:
                raise TypeError(f"{fn.__name__}: {f.name!r} of {p.annotation} is taken twice")
            taken.add(f.name)
            default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            kind = inspect.Parameter.KEYWORD_ONLY
            params.append(
                inspect.Parameter(f.name, kind, default=default, annotation=hints[f.name])
            )

    @functools.wraps(fn)
    def wrapper(**kwargs):
        for name, cls in bundles.items():
            kwargs[name] = cls(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(cls)})
        return fn(**kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)
    return wrapper


def command(
    app: typer.Typer,
    name: str | None = None,
    *,
    renamed: dict[str, str] | None = None,
    flag_values: dict[str, str] | None = None,
):
    """Register a command on ``app``, with the one-line error handling and its option bundles
    expanded (see :class:`Bundle`); ``renamed`` maps the old spellings of its options (still
    accepted, with a warning) to the new ones; ``flag_values`` maps a flag that may take a value
    to the option the value is for (:func:`flag_value`)."""
    attrs = {"renamed": dict(renamed or {}), "flag_values": dict(flag_values or {})}
    cls = type("Command", (Command,), attrs)

    def register(fn):
        app.command(name, cls=cls)(handle_errors(_bundles(fn)))
        return fn

    return register
