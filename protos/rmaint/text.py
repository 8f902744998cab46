"""Text that came from elsewhere, made safe to show on a terminal."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with control characters in caret notation (``^[`` for ESC, ``^J`` for a
    line feed), and C1 controls, Unicode line separators and bidirectional and zero-width
    controls as ``<U+202E>``: whatever a peer sent, no terminal escape, no line of its own
    and no reordering or hidden text reaches the screen. Tabs stay."""
    return text.translate(_SHOWN)


# As permissions' rule for text meant for people (is_plain_text), C0 and DEL aside.
_BIDI = (0x061C, *range(0x200B, 0x2010), *range(0x2028, 0x202F), *range(0x2060, 0x206A),
         0xFEFF)
_SHOWN = ({c: "^" + chr(c + 64) for c in range(32) if c != 9} | {127: "^?"}
          | {c: f"<U+{c:04X}>" for c in (*range(0x80, 0xA0), *_BIDI)})
