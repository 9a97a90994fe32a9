"""Docstring pieces that both adapters' public functions share, written once.

A docstring names a shared piece by a line that holds only ``{NAME}``; :func:`fill_doc` puts the
piece there, indented as that line. Braces elsewhere in the docstring (LaTeX, ``"{site}_dim_{i}"``)
are left alone.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import TypeVar

__all__ = ["fill_doc"]

_T = TypeVar("_T")


def fill_doc(**pieces: str) -> Callable[[_T], _T]:
    """Decorator: replace each ``{NAME}`` line of the docstring by the piece ``NAME``.

    Args:
        **pieces: The pieces, by name (their own indentation is removed first).

    Raises:
        ValueError: If the docstring lacks a line for one of the pieces.
    """

    def fill(obj: _T) -> _T:
        lines = (obj.__doc__ or "").split("\n")
        for name, piece in pieces.items():
            marker = "{" + name + "}"
            at = [i for i, line in enumerate(lines) if line.strip() == marker]
            if not at:
                raise ValueError(f"{obj.__qualname__}'s docstring has no {marker} line")
            for i in at:
                indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                text = textwrap.indent(textwrap.dedent(piece).strip("\n"), indent)
                lines[i] = text
        obj.__doc__ = "\n".join(lines)
        return obj

    return fill
