"""Values as Hydra's override grammar reads them: ``every=5`` is an int, ``yes`` a string.

:func:`parse_value` reads the part after ``=`` of ``hotcb cb set ID name=value`` exactly as
Hydra's ``OverridesParser`` reads the value of ``name=value`` on a Hydra command line (its
lexer ``OverrideLexer.g4`` and the primitive, list and dict rules of ``OverrideParser.g4``,
hydra-core 1.3), without importing Hydra (that costs the CLI about 0.2 s): ``5`` and ``1_000``
are ints, ``3e-4``, ``5.``, ``inf`` and ``nan`` floats, ``true``/``False`` booleans (any
case), ``null`` None, ``[a,b]`` a list, ``{a:1}`` a dict, ``'5'`` a string, and everything
else a string as written (``yes``, ``on``, ``0x10``, ``007``, ``a b``; ``\\,`` is an escaped
comma). ``tests/test_overrides.py`` checks it against Hydra's parser, value by value.

Two parts of the grammar are refused with a clear error because a hot parameter takes one
plain value: sweeps (``a,b``, ``range(1,5)``, the other functions) and dicts whose keys
are not strings. What Hydra cannot parse (``a=b``, ``'a' 'b'``, ``é``) is refused too.

Example:
    >>> [parse_value(s) for s in ["5", "yes", "0x10", "3e-4", "TRUE", "[a, 'b c']", "'5'"]]
    [5, 'yes', '0x10', 0.0003, True, ['a', 'b c'], '5']
    >>> parse_value("a,b")
    Traceback (most recent call last):
    ...
    hotcb.overrides.ValueSyntaxError: 'a,b' is a sweep (several values): a hot parameter takes one; quote it to mean the text ('a,b') or write a list ([a,b])
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = ["ValueSyntaxError", "parse_value"]

#: How deep lists and dicts may nest here (a command allows less: ``hotcb.ops.MAX_DEPTH``).
MAX_DEPTH = 100


class ValueSyntaxError(ValueError):
    """A value that Hydra's override grammar does not read as one plain value."""


_IU = r"(?:0|[1-9](?:_?[0-9])*)"
_DIGITS = r"[0-9](?:_?[0-9])*"
_SIGN = r"[+-]?"
_POINT = (rf"{_IU}\.", rf"(?:{_IU})?\.{_DIGITS}")
_EXP = rf"[eE][+-]?{_DIGITS}"

# The tokens of VALUE_MODE, in the lexer's order (a tie in length goes to the first), each
# as its alternatives (the lexer takes the longest match of a rule over all of them).
_TOKENS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("POPEN", (r"[ \t]*\([ \t]*",)),
    ("COMMA", (r"[ \t]*,[ \t]*",)),
    ("PCLOSE", (r"[ \t]*\)",)),
    ("BRACKET_OPEN", (r"\[[ \t]*",)),
    ("BRACKET_CLOSE", (r"[ \t]*\]",)),
    ("BRACE_OPEN", (r"\{[ \t]*",)),
    ("BRACE_CLOSE", (r"[ \t]*\}",)),
    ("COLON", (r"[ \t]*:[ \t]*",)),
    ("EQUAL", (r"[ \t]*=[ \t]*",)),
    (
        "FLOAT",
        tuple(
            _SIGN + alt
            for alt in (
                *_POINT,
                rf"{_IU}{_EXP}",
                *(p + _EXP for p in _POINT),
                r"[Ii][Nn][Ff]",
                r"[Nn][Aa][Nn]",
            )
        ),
    ),
    ("INT", (_SIGN + _IU,)),
    ("BOOL", (r"[Tt][Rr][Uu][Ee]", r"[Ff][Aa][Ll][Ss][Ee]")),
    ("NULL", (r"[Nn][Uu][Ll][Ll]",)),
    ("UNQUOTED_CHAR", (r"[/\-\\+.$%*@?|]",)),
    ("ID", (r"[a-zA-Z_][a-zA-Z0-9_\-]*",)),
    ("ESC", (r"(?:\\\\|\\\(|\\\)|\\\[|\\\]|\\\{|\\\}|\\:|\\=|\\,|\\ |\\\t)+",)),
    ("WS", (r"[ \t]+",)),
    ("QUOTED_VALUE", (r'"(?:(?:\\\\)*|.*?[^\\](?:\\\\)*)"', r"'(?:(?:\\\\)*|.*?[^\\](?:\\\\)*)'")),
    ("INTERPOLATION", (r"\$\{[^}]+\}",)),
)
_COMPILED = tuple((name, tuple(re.compile(a, re.S) for a in alts)) for name, alts in _TOKENS)
#: the tokens a primitive is made of (besides a lone QUOTED_VALUE) ...
_PRIMITIVE = frozenset(
    {"ID", "NULL", "INT", "FLOAT", "BOOL", "INTERPOLATION", "UNQUOTED_CHAR", "COLON", "ESC", "WS"}
)
#: ... and a dict key
_DICT_KEY = _PRIMITIVE - {"COLON", "INTERPOLATION"}
_ESC_QUOTE = {"'": re.compile(r"(\\)+'"), '"': re.compile(r'(\\)+"')}


def _tokens(text: str) -> list[tuple[str, str]]:
    """``text`` as the lexer's (type, text) tokens."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        best, best_len = "", 0
        for name, alts in _COMPILED:
            for pattern in alts:
                m = pattern.match(text, pos)
                if m is not None and m.end() - pos > best_len:
                    best, best_len = name, m.end() - pos
        if not best_len:
            raise ValueSyntaxError(
                f"cannot read {text!r} at {text[pos : pos + 10]!r} (column {pos + 1}); "
                "quote the value, e.g. name='...'"
            )
        out.append((best, text[pos : pos + best_len]))
        pos += best_len
    return out


def parse_value(text: str) -> Any:
    """The value of a ``name=value`` override, as Hydra's parser returns it (quoted strings
    as plain strings); a :class:`ValueSyntaxError` for what is not one plain value."""
    value = text.lstrip(" \t")  # the lexer's '=' takes the blanks after it
    if not value:
        return ""
    reader = _Reader(text, _tokens(value))
    result = reader.element(0)
    if reader.peek() == "COMMA":
        raise ValueSyntaxError(
            f"{text!r} is a sweep (several values): a hot parameter takes one; quote it to "
            f"mean the text ('{text}') or write a list ([{text}])"
        )
    if reader.peek() is not None:
        raise reader.unexpected()
    return result


class _Reader:
    """Recursive descent over the tokens of one value (the grammar's ``element``)."""

    def __init__(self, text: str, tokens: list[tuple[str, str]]) -> None:
        self.text, self.tokens, self.pos = text, tokens, 0

    def peek(self, ahead: int = 0) -> str | None:
        at = self.pos + ahead
        return self.tokens[at][0] if at < len(self.tokens) else None

    def unexpected(self) -> ValueSyntaxError:
        if self.pos >= len(self.tokens):
            return ValueSyntaxError(f"cannot read {self.text!r}: it ends too early")
        kind, tok = self.tokens[self.pos]
        hint = "; escape it (\\=) or quote the value" if kind == "EQUAL" else ""
        return ValueSyntaxError(f"cannot read {self.text!r}: unexpected {tok.strip()!r}{hint}")

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            raise self.unexpected()
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def element(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueSyntaxError(f"cannot read {self.text!r}: nested too deeply")
        kind = self.peek()
        if kind == "ID" and self.peek(1) == "POPEN":
            name = self.tokens[self.pos][1]
            raise ValueSyntaxError(
                f"{self.text!r} calls the function {name}(): Hydra's functions (sweeps, "
                "casts) are not taken here; give the value itself, or quote it"
            )
        if kind == "BRACKET_OPEN":
            return self.list(depth)
        if kind == "BRACE_OPEN":
            return self.dict(depth)
        if kind == "QUOTED_VALUE":
            return _unquote(self.take("QUOTED_VALUE"))
        return self.primitive(_PRIMITIVE)

    def primitive(self, allowed: frozenset[str]) -> Any:
        start = self.pos
        while self.peek() in allowed:
            self.pos += 1
        part = self.tokens[start : self.pos]
        if not part:
            raise self.unexpected()
        if part[0][0] == "WS":
            if len(part) == 1:
                raise ValueSyntaxError(f"cannot read {self.text!r}: a value of blanks only")
            part = part[1:]
        if part[-1][0] == "WS":
            part = part[:-1]
        if len(part) > 1:
            return "".join(t[1::2] if k == "ESC" else t for k, t in part)
        kind, tok = part[0]
        return _typed(kind, tok, self.text)

    def list(self, depth: int) -> list[Any]:
        self.take("BRACKET_OPEN")
        items: list[Any] = []
        if self.peek() != "BRACKET_CLOSE":
            items.append(self.element(depth + 1))
            while self.peek() == "COMMA":
                self.pos += 1
                items.append(self.element(depth + 1))
        self.take("BRACKET_CLOSE")
        return items

    def dict(self, depth: int) -> dict[str, Any]:
        self.take("BRACE_OPEN")
        out: dict[str, Any] = {}
        while self.peek() != "BRACE_CLOSE":
            if out:
                self.take("COMMA")
            key = self.primitive(_DICT_KEY)
            if not isinstance(key, str):
                raise ValueSyntaxError(
                    f"cannot use {self.text!r}: the key {key!r} is not a string (a hot "
                    "parameter's dict has string keys)"
                )
            self.take("COLON")
            out[key] = self.element(depth + 1)
        self.take("BRACE_CLOSE")
        return out


def _typed(kind: str, tok: str, text: str) -> Any:
    """A single token as the value it stands for."""
    if kind == "INT":
        try:
            return int(tok)
        except ValueError:  # more digits than int() converts
            digits = sys.get_int_max_str_digits()
            raise ValueSyntaxError(
                f"cannot read {text!r}: a number has over {digits} digits"
            ) from None
    if kind == "FLOAT":
        return float(tok)
    if kind == "NULL":
        return None
    if kind == "BOOL":
        return tok.lower() == "true"
    if kind == "ESC":
        return tok[1::2]
    return tok  # ID, INTERPOLATION (kept as text), UNQUOTED_CHAR, COLON


def _unquote(tok: str) -> str:
    """A QUOTED_VALUE's text: backslashes before a quote un-escaped (Hydra's rule)."""
    quote, rest = tok[0], tok[1:]
    parts = []
    match = _ESC_QUOTE[quote].search(rest)
    while match is not None:
        start, stop = match.span()
        parts.append(rest[:start])
        parts.append(rest[start + 1 : stop : 2])
        rest = rest[stop:]
        match = _ESC_QUOTE[quote].search(rest)
    if len(rest) > 1 or not parts:
        parts.append(rest[:-1])
    return "".join(parts)
