"""Reading an operator's text file (GeoJSON, TOML, weather JSON) with errors that name the file and say
what is wrong with it: missing, a directory, unreadable, empty, binary, not UTF-8. Never a traceback."""

from __future__ import annotations

import codecs
from pathlib import Path

from groundctl.errors import InputError

MAX_BYTES = 64 * 1024 * 1024  # an airspace or fleet file is kilobytes; this is a wrong file, not a big map


def read_text(path: str | Path) -> str:
    p = Path(path)
    field = str(p)
    try:
        if p.is_dir():
            raise InputError("is a directory, not a file", field=field)
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise InputError(f"is {size / 1e6:.0f} MB, more than any {p.suffix or 'such'} file should be: "
                             f"is it the right file?", field=field)
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", field=field) from None
    except PermissionError:
        raise InputError("permission denied: cannot read it", field=field) from None
    except OSError as e:
        raise InputError(f"cannot read it: {e.strerror or e}", field=field) from None
    if not data.strip():
        raise InputError("is empty", field=field)
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):  # a Windows "Unicode" save: readable, but not what the file format says
            raise InputError(f"is not UTF-8 text: it is {name} (byte-order mark {bom.hex()}); save it as UTF-8",
                             field=field)
    if b"\x00" in data[:8192]:
        raise InputError("is a binary file, not text (it holds NUL bytes)", field=field)
    try:
        # utf-8-sig: a byte-order mark from a Windows editor is harmless
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InputError(f"is not UTF-8 text: byte 0x{data[e.start]:02x} at line {line} (offset {e.start}); "
                         f"save it as UTF-8", field=field) from None
