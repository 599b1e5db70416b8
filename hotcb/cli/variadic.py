"""``--init a=1 b=2``: an option that takes every ``K=V`` word after it.

The reference's CLI (argparse, ``nargs="*"``) takes several pairs after one ``--init``;
hotcb's takes one pair per ``--init`` and may be repeated. :class:`KeyValueOption` accepts
both: after the value of the option itself it keeps taking the following words while they
are ``K=V`` pairs, and stops at the first word that is not (an option such as ``--symbol``,
a positional argument such as the callback id, or ``--``). A callback id never contains
``=``, so ``cb load --init a=1 b=2 viz --path m --symbol S`` and
``cb load viz --init a=1 --init b=2 --path m --symbol S`` mean the same.

Example:
    >>> import click
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @click.argument("name")
    ... @click.option("--init", cls=KeyValueOption, multiple=True)
    ... def show(name, init):
    ...     click.echo(f"{name} {list(init)}")
    >>> CliRunner().invoke(show, ["--init", "a=1", "b=2", "viz", "--init", "c=3"]).output
    "viz ['a=1', 'b=2', 'c=3']\\n"
"""

from __future__ import annotations

from typing import Any

import click

__all__ = ["KeyValueOption", "is_pair"]


def is_pair(word: str) -> bool:
    """True for a ``K=V`` word that is not an option (``x=-1`` is a pair, ``-x=1`` is not).

    >>> [is_pair(w) for w in ["a=1", "msg=a b", "viz", "--symbol", "-x=1", "--"]]
    [True, True, False, False, False, False]
    """
    return "=" in word and not word.startswith("-")


class KeyValueOption(click.Option):
    """A ``multiple=True`` option whose every use takes one or more ``K=V`` words."""

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        # click's parser keeps its options by spelling; wrap how this one stores a value
        # (click.parser._Option.process) so it also takes the pairs that follow
        for spelling in self.opts:
            parsed = parser._long_opt.get(spelling) or parser._short_opt.get(spelling)
            if parsed is not None:
                parsed.process = _taking_pairs(parsed.process)


def _taking_pairs(process: Any) -> Any:
    def take(value: Any, state: Any) -> None:
        process(value, state)
        while state.rargs and is_pair(state.rargs[0]):
            process(state.rargs.pop(0), state)

    return take
