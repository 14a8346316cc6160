"""What the command line prints: text made safe for a terminal, and tables that fit its width.

Ad-set and campaign names are user-written text. Printed raw, a name holding an escape sequence
could clear or recolour the user's terminal, and a bidirectional override could make a line
read differently from what it says. Every string the CLI prints goes through `safe`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# C0 controls, DEL, C1 controls; bidirectional embeddings, overrides and isolates; the
# invisible marks that reorder or hide text (LRM, RLM, ALM, zero-width joiners, BOM).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")
_UNSAFE_INLINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff\ufff9-\ufffb]"
)
ELLIPSIS = "…"


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if ch == "\t":
        return " "
    if ch in "\r\n\u2028\u2029":
        return "⏎"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: object, inline: bool = False) -> str:
    """Text with every control, bidirectional and invisible formatting character shown escaped.

    `inline` also replaces newlines (for a table cell); otherwise newlines are kept.
    """
    s = str(text)
    return (_UNSAFE_INLINE if inline else _UNSAFE).sub(_escape, s)


def say(*parts: object, err: bool = False) -> None:
    """print() for the CLI: everything escaped, to stdout or stderr."""
    print(*(safe(p) for p in parts), file=sys.stderr if err else sys.stdout)


def width_of(text: str) -> int:
    """Terminal columns a string takes (wide East Asian characters take two, combining marks none)."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def clip(text: str, width: int) -> str:
    """Text cut to `width` terminal columns, the cut marked with an ellipsis."""
    if width_of(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    out, used = [], 0
    for ch in text:
        w = 0 if unicodedata.combining(ch) else (2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def clip_middle(text: str, width: int) -> str:
    """Text cut in the middle (names often differ only at the end): "Prospecting | Int…| IN 25-44"."""
    if width_of(text) <= width:
        return text
    if width < 5:
        return clip(text, width)
    tail_width = (width - 1) // 2
    head = clip(text, width - tail_width)[:-1]
    tail, used = [], 0
    for ch in reversed(text):
        w = width_of(ch)
        if used + w > tail_width:
            break
        tail.append(ch)
        used += w
    return head + ELLIPSIS + "".join(reversed(tail))


def pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(width - width_of(text), 0)
    return gap + text if right else text + gap


def terminal_width(default: int = 120) -> int:
    """The terminal's width: $COLUMNS, else the terminal's own, else `default`."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return shutil.get_terminal_size((default, 24)).columns


@dataclass(frozen=True)
class Column:
    """A table column: `flex` columns share the room left; `drop` orders what goes first when narrow."""

    key: str
    title: str
    right: bool = False
    flex: int = 0
    min_width: int = 0
    drop: int = 0
    cut_middle: bool = False

    def fit(self, text: str, width: int) -> str:
        return clip_middle(text, width) if self.cut_middle else clip(text, width)


def render_table(rows: Sequence[dict[str, object]], columns: Sequence[Column], width: int) -> str:
    """A plain-text table fitting `width` columns; long cells are cut with an ellipsis."""
    cells = [{c.key: safe("" if r.get(c.key) is None else r[c.key], inline=True) for c in columns} for r in rows]
    cols = list(columns)

    def natural(c: Column) -> int:
        return max([width_of(c.title)] + [width_of(row[c.key]) for row in cells])

    while True:
        fixed = sum(natural(c) for c in cols if not c.flex)
        flex = [c for c in cols if c.flex]
        gaps = 2 * (len(cols) - 1)
        room = width - fixed - gaps
        need_min = sum(min(c.min_width, natural(c)) for c in flex)
        droppable = [c for c in cols if c.drop]
        if room >= need_min or not droppable:
            break
        cols.remove(max(droppable, key=lambda c: c.drop))
    widths = {c.key: natural(c) for c in cols if not c.flex}
    flex = [c for c in cols if c.flex]
    room = max(room, 0)
    wants = {c.key: natural(c) for c in flex}
    if sum(wants.values()) <= room:
        widths.update(wants)
    else:
        # Share the room by weight, never below a column's minimum; what a column does not need
        # goes to the others.
        left, pending = room, list(flex)
        # Minimums hold only while the room allows them all.
        floors = {c.key: min(c.min_width, wants[c.key]) if room >= need_min else 4 for c in flex}
        while pending:
            total = sum(c.flex for c in pending)
            share = {c.key: max(floors[c.key], left * c.flex // total) for c in pending}
            small = [c for c in pending if wants[c.key] <= share[c.key]]
            if not small:
                widths.update(share)
                break
            for c in small:
                widths[c.key] = wants[c.key]
                left -= wants[c.key]
                pending.remove(c)
    lines = ["  ".join(pad(clip(c.title, widths[c.key]), widths[c.key], c.right) for c in cols).rstrip()]
    lines.append("  ".join("-" * widths[c.key] for c in cols))
    for row in cells:
        lines.append("  ".join(pad(c.fit(row[c.key], widths[c.key]), widths[c.key], c.right) for c in cols).rstrip())
    return "\n".join(lines)
