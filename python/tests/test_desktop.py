"""``machine.desktop`` against a real server and a real X display (machines of the shipped
``desktop`` template), sync and async: the size asked for, real pixels (a decoded PNG), the
pointer, the clipboard, windows, an unknown key, the viewer URL and a recording."""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest

from conftest import TEMPLATES_DIR, TestServer, until
from nullspace import AsyncMachine, DesktopUnavailableError, InvalidArgumentError, Machine
from nullspace.models import CursorPosition, ScreenSize

if not (Path(TEMPLATES_DIR) / "desktop" / "template.json").exists():
    reason = f"the desktop template is not built in {TEMPLATES_DIR} (scripts/setup.sh builds it)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)


def png_pixel(png: bytes, x: int, y: int) -> Tuple[int, int, int]:
    """The RGB of one pixel of an 8-bit RGB/RGBA PNG (any row filter)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat = 8, b""
    width = height = channels = 0
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", data[:8])
            channels = {2: 3, 6: 4}[data[9]]
        elif kind == b"IDAT":
            idat += data
        at += 12 + length
    raw, row = zlib.decompress(idat), width * channels
    prev = bytearray(row)
    for r in range(y + 1):
        f, line = raw[r * (row + 1)], bytearray(raw[r * (row + 1) + 1 : (r + 1) * (row + 1)])
        for i in range(row):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            p = {0: 0, 1: a, 2: b, 3: (a + b) // 2}.get(f)
            if p is None:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line[i] = (line[i] + p) & 0xFF
        prev = line
    return tuple(prev[x * channels : x * channels + 3])  # type: ignore[return-value]


@pytest.fixture(scope="module")
def desktop(server: TestServer) -> Iterator[Machine]:
    m = Machine.create(template="desktop", desktop={"width": 640, "height": 480})
    try:
        yield m
    finally:
        m.kill()


def test_size_pixels_and_pointer(desktop: Machine) -> None:
    size = desktop.desktop.get_screen_size()
    assert isinstance(size, ScreenSize) and size == (640, 480)
    assert desktop.commands.run("xsetroot -solid '#ff0000'").exit_code == 0
    png = desktop.desktop.screenshot()
    assert png_pixel(png, 320, 240) == (255, 0, 0)
    assert desktop.desktop.screenshot("jpeg")[:3] == b"\xff\xd8\xff"
    part = desktop.desktop.screenshot(region=(0, 0, 16, 8))
    assert struct.unpack(">II", part[16:24]) == (16, 8)
    desktop.desktop.move_mouse(100, 50)
    pos = desktop.desktop.get_cursor_position()
    assert isinstance(pos, CursorPosition) and pos == (100, 50) and pos.x == 100


def test_clipboard_windows_and_keys(desktop: Machine) -> None:
    desktop.desktop.set_clipboard("from python ✓")
    assert desktop.commands.run("xclip -selection clipboard -o").stdout == "from python ✓"
    assert desktop.desktop.get_clipboard() == "from python ✓"
    pid = desktop.desktop.launch("xterm", ["-title", "py-window", "-geometry", "30x4+10+10"])
    w = until(
        lambda: next((w for w in desktop.desktop.list_windows() if w.title == "py-window"), None),
        "the xterm's window",
    )
    assert w.app == "xterm" and w.pid == pid
    desktop.desktop.focus_window(w.id)
    assert desktop.desktop.get_current_window_id() == w.id
    desktop.desktop.press(["ctrl+l", "enter"])
    with pytest.raises(InvalidArgumentError) as info:
        desktop.desktop.press("alt+nosuchkey")
    assert info.value.details["key"] == "nosuchkey"
    with pytest.raises(InvalidArgumentError) as off:
        desktop.desktop.left_click(640, 10)
    assert off.value.details["field"] == "x"
    desktop.desktop.close_window(w.id)
    until(lambda: all(x.id != w.id for x in desktop.desktop.list_windows()), "the window closed")


def test_viewer_url_and_recording(desktop: Machine) -> None:
    url = desktop.desktop.stream.get_url(view_only=True)
    assert url.view_only is True and url.url.startswith("http://6081-") and "/viewer.html?ns_token=nspv_" in url.url
    assert desktop.desktop.stream.status()["running"] is True
    rec = desktop.desktop.recordings.start(fps=5)
    desktop.desktop.wait(1500)
    done = desktop.desktop.recordings.stop(rec.id)
    assert done.status == "stopped" and done.size_bytes > 0
    mp4 = desktop.desktop.recordings.download(rec.id)
    assert mp4[4:8] == b"ftyp"
    assert [r.id for r in desktop.desktop.recordings.list()] == [rec.id]
    desktop.desktop.recordings.delete(rec.id)
    assert desktop.desktop.recordings.list() == []
    desktop.desktop.stream.stop()


def test_a_template_without_a_desktop_is_refused(server: TestServer) -> None:
    with pytest.raises(DesktopUnavailableError) as info:
        Machine.create(template="base", desktop=True)
    assert info.value.code == "desktop_unavailable" and info.value.status == 400


def test_async(server: TestServer) -> None:
    async def main() -> Any:
        m = await AsyncMachine.create(template="desktop")
        try:
            assert await m.desktop.get_screen_size() == (1024, 768)
            await m.desktop.move_mouse(7, 9)
            await m.desktop.wait(10)
            assert await m.desktop.get_cursor_position() == (7, 9)
            await m.desktop.write("typed")
            png = await m.desktop.screenshot()
            assert png[:4] == b"\x89PNG"
            assert (await m.desktop.recordings.list()) == []
        finally:
            await m.kill()

    asyncio.run(main())
