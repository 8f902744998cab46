"""Text that came from elsewhere, made safe to show on a terminal."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with control characters in caret notation (``^[`` for ESC, ``^J`` for a
    line feed) and bidirectional controls as ``<U+202E>``: whatever a peer sent, no
    terminal escape, no line of its own and no reordering reaches the screen. Tabs stay."""
    return text.translate(_SHOWN)


_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_SHOWN = ({c: "^" + chr(c + 64) for c in range(32) if c != 9} | {127: "^?"}
          | {c: f"<U+{c:04X}>" for c in (*range(0x80, 0xA0), *_BIDI)})
