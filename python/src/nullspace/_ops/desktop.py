"""``machine.desktop``: screenshots, mouse and keyboard, windows, clipboard, applications, the
viewer (``desktop.stream``) and recordings (``desktop.recordings``), on the machine's real X
display (machines of the ``desktop`` template)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import _protocol as p
from .._protocol import Call, Request, Sleep, machine_path, seg
from ..models import CursorPosition, DesktopWindow, Recording, ScreenSize, StreamUrl
from ._base import Gen, _invalid, _json, op


def _base(machine_id: str) -> str:
    return f"{machine_path(machine_id)}/desktop"


def _point(value: Any, field: str) -> Dict[str, int]:
    try:
        x, y = value
    except (TypeError, ValueError):
        raise _invalid(field, "must be an (x, y) pair") from None
    return {"x": x, "y": y}


def _req(machine_id: str, method: str, path: str, json: Any = None, timeout: Optional[float] = None) -> Gen:
    return _json(Request(method, f"{_base(machine_id)}{path}", json=json, timeout=timeout))


def _click(machine_id: str, button: str, x: Optional[int], y: Optional[int], double: bool, timeout: Optional[float]) -> Gen:
    body: Dict[str, Any] = {"button": button}
    if x is not None:
        body["x"] = x
    if y is not None:
        body["y"] = y
    if double:
        body["double"] = True
    yield from _req(machine_id, "POST", "/mouse/click", body, timeout)


def _stream_url(machine_id: str, path: str, view_only: bool, expires_in: Optional[int], timeout: Optional[float]) -> Gen:
    body: Dict[str, Any] = {"view_only": view_only}
    if expires_in is not None:
        body["expires_in"] = expires_in
    wire = yield from _json(Request("POST", f"{_base(machine_id)}{path}", json=body, timeout=timeout))
    return StreamUrl.from_dict(wire)


class DesktopOps:
    """``machine.desktop``."""

    @op
    def screenshot(
        self,
        format: str = "png",
        *,
        region: Optional[Tuple[int, int, int, int]] = None,
        quality: Optional[int] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """A screenshot as bytes: PNG (default) or ``format="jpeg"``; ``region=(x, y, width,
        height)`` for part of the screen.

        Example::

            png = machine.desktop.screenshot()
            corner = machine.desktop.screenshot(region=(0, 0, 200, 100))
        """
        q: List[Tuple[str, str]] = [("format", format)]
        if quality is not None:
            q.append(("quality", str(quality)))
        if region is not None:
            try:
                x, y, w, h = region
            except (TypeError, ValueError):
                raise _invalid("region", "must be (x, y, width, height)") from None
            q += [("x", str(x)), ("y", str(y)), ("width", str(w)), ("height", str(h))]
        resp = yield Call(Request("GET", f"{_base(self._machine_id)}/screenshot", query=q, timeout=request_timeout))
        p.raise_for_status(resp)
        return resp.body

    @op
    def get_screen_size(self, *, request_timeout: Optional[float] = None) -> Gen:
        """The screen's size, a named tuple ``(width, height)``.

        Example::

            width, height = machine.desktop.get_screen_size()
        """
        wire = yield from _req(self._machine_id, "GET", "/screen", timeout=request_timeout)
        return ScreenSize(wire["width"], wire["height"])

    @op
    def get_cursor_position(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Where the pointer is, a named tuple ``(x, y)``.

        Example::

            x, y = machine.desktop.get_cursor_position()
        """
        wire = yield from _req(self._machine_id, "GET", "/cursor", timeout=request_timeout)
        return CursorPosition(wire["x"], wire["y"])

    @op
    def move_mouse(self, x: int, y: int, *, request_timeout: Optional[float] = None) -> Gen:
        """Moves the pointer.

        Example::

            machine.desktop.move_mouse(100, 200)
        """
        yield from _req(self._machine_id, "POST", "/mouse/move", {"x": x, "y": y}, request_timeout)

    @op
    def left_click(self, x: Optional[int] = None, y: Optional[int] = None, *, request_timeout: Optional[float] = None) -> Gen:
        """A left click at ``(x, y)``, or where the pointer is.

        Example::

            machine.desktop.left_click(512, 384)
        """
        yield from _click(self._machine_id, "left", x, y, False, request_timeout)

    @op
    def right_click(self, x: Optional[int] = None, y: Optional[int] = None, *, request_timeout: Optional[float] = None) -> Gen:
        """A right click.

        Example::

            machine.desktop.right_click(512, 384)
        """
        yield from _click(self._machine_id, "right", x, y, False, request_timeout)

    @op
    def middle_click(self, x: Optional[int] = None, y: Optional[int] = None, *, request_timeout: Optional[float] = None) -> Gen:
        """A middle click (pastes the X primary selection in most applications).

        Example::

            machine.desktop.middle_click()
        """
        yield from _click(self._machine_id, "middle", x, y, False, request_timeout)

    @op
    def double_click(self, x: Optional[int] = None, y: Optional[int] = None, *, request_timeout: Optional[float] = None) -> Gen:
        """A double left click (selects a word in most applications).

        Example::

            machine.desktop.double_click(120, 40)
        """
        yield from _click(self._machine_id, "left", x, y, True, request_timeout)

    @op
    def mouse_press(self, button: str = "left", *, request_timeout: Optional[float] = None) -> Gen:
        """Presses a mouse button (``left``, ``middle``, ``right``) and holds it.

        Example::

            machine.desktop.mouse_press("left")
        """
        yield from _req(self._machine_id, "POST", "/mouse/press", {"button": button}, request_timeout)

    @op
    def mouse_release(self, button: str = "left", *, request_timeout: Optional[float] = None) -> Gen:
        """Releases a mouse button.

        Example::

            machine.desktop.mouse_release("left")
        """
        yield from _req(self._machine_id, "POST", "/mouse/release", {"button": button}, request_timeout)

    @op
    def drag(self, start: Sequence[int], end: Sequence[int], *, request_timeout: Optional[float] = None) -> Gen:
        """Drags with the left button from ``start`` to ``end`` (``(x, y)`` pairs).

        Example::

            machine.desktop.drag((10, 10), (200, 150))
        """
        body = {"from": _point(start, "start"), "to": _point(end, "end")}
        yield from _req(self._machine_id, "POST", "/mouse/drag", body, request_timeout)

    @op
    def scroll(self, direction: str = "down", amount: int = 1, *, request_timeout: Optional[float] = None) -> Gen:
        """Turns the wheel: ``up``, ``down``, ``left`` or ``right``, ``amount`` steps.

        Example::

            machine.desktop.scroll("down", 3)
        """
        yield from _req(self._machine_id, "POST", "/mouse/scroll", {"direction": direction, "amount": amount}, request_timeout)

    @op
    def write(
        self,
        text: str,
        *,
        chunk_size: Optional[int] = None,
        delay_ms: Optional[int] = None,
        request_timeout: Optional[float] = None,
    ) -> Gen:
        """Types text into the focused window (any Unicode).

        Example::

            machine.desktop.write("héllo wörld\\n")
        """
        body: Dict[str, Any] = {"text": text}
        if chunk_size is not None:
            body["chunk_size"] = chunk_size
        if delay_ms is not None:
            body["delay_ms"] = delay_ms
        yield from _req(self._machine_id, "POST", "/keyboard/write", body, 0 if request_timeout is None else request_timeout)

    @op
    def press(self, keys: Union[str, Sequence[str]], *, request_timeout: Optional[float] = None) -> Gen:
        """Presses a key or combination (``"enter"``, ``"ctrl+c"``, X keysym names), or several in
        turn; an unknown key raises :class:`InvalidArgumentError` naming it.

        Example::

            machine.desktop.press("ctrl+a")
            machine.desktop.press(["ctrl+c", "esc"])
        """
        body = {"keys": keys if isinstance(keys, str) else list(keys)}
        yield from _req(self._machine_id, "POST", "/keyboard/press", body, request_timeout)

    @op
    def list_windows(self, *, request_timeout: Optional[float] = None) -> Gen:
        """The windows on the screen, as :class:`DesktopWindow` objects.

        Example::

            for w in machine.desktop.list_windows():
                print(w.id, w.app, w.title)
        """
        wire = yield from _req(self._machine_id, "GET", "/windows", timeout=request_timeout)
        return [DesktopWindow.from_dict(w) for w in wire["items"]]

    @op
    def get_current_window_id(self, *, request_timeout: Optional[float] = None) -> Gen:
        """The focused window's id, or None.

        Example::

            window_id = machine.desktop.get_current_window_id()
        """
        wire = yield from _req(self._machine_id, "GET", "/windows/current", timeout=request_timeout)
        return wire["id"]

    @op
    def focus_window(self, window_id: int, *, request_timeout: Optional[float] = None) -> Gen:
        """Raises and focuses a window.

        Example::

            machine.desktop.focus_window(window_id)
        """
        yield from _req(self._machine_id, "POST", f"/windows/{seg(window_id)}/focus", timeout=request_timeout)

    @op
    def close_window(self, window_id: int, *, request_timeout: Optional[float] = None) -> Gen:
        """Asks a window to close, as its close button does.

        Example::

            machine.desktop.close_window(window_id)
        """
        yield from _req(self._machine_id, "DELETE", f"/windows/{seg(window_id)}", timeout=request_timeout)

    @op
    def get_clipboard(self, *, request_timeout: Optional[float] = None) -> Gen:
        """The clipboard's text ("" when empty).

        Example::

            text = machine.desktop.get_clipboard()
        """
        wire = yield from _req(self._machine_id, "GET", "/clipboard", timeout=request_timeout)
        return wire["text"]

    @op
    def set_clipboard(self, text: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Sets the clipboard's text.

        Example::

            machine.desktop.set_clipboard("copied")
        """
        yield from _req(self._machine_id, "PUT", "/clipboard", {"text": text}, request_timeout)

    @op
    def launch(self, app: str, args: Optional[Sequence[str]] = None, *, request_timeout: Optional[float] = None) -> Gen:
        """Starts a graphical application (a program on PATH, no shell); returns its pid.

        Example::

            pid = machine.desktop.launch("xterm", ["-geometry", "80x24+0+0"])
        """
        wire = yield from _req(self._machine_id, "POST", "/launch", {"app": app, "args": list(args or [])}, request_timeout)
        return wire["pid"]

    @op
    def open(self, path_or_url: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Opens a file or URL with its default application (xdg-open).

        Example::

            machine.desktop.open("/workspace/report.pdf")
        """
        yield from _req(self._machine_id, "POST", "/open", {"target": path_or_url}, request_timeout)

    @op
    def wait(self, ms: float) -> Gen:
        """Waits ``ms`` milliseconds (in the client) before the next action.

        Example::

            machine.desktop.wait(500)
        """
        yield Sleep(ms / 1000)


class DesktopStreamOps:
    """``machine.desktop.stream``: the viewer (noVNC over a signed preview URL)."""

    @op
    def start(self, view_only: bool = False, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """Starts the viewer (idempotent) and returns a signed :class:`StreamUrl` of its page.

        Example::

            url = machine.desktop.stream.start(view_only=True).url
        """
        return (yield from _stream_url(self._machine_id, "/stream", view_only, expires_in, request_timeout))

    @op
    def get_url(self, view_only: bool = False, *, expires_in: Optional[int] = None, request_timeout: Optional[float] = None) -> Gen:
        """A new signed viewer URL (its own preview grant), starting the viewer if needed.

        Example::

            print(machine.desktop.stream.get_url(view_only=True).url)
        """
        return (yield from _stream_url(self._machine_id, "/stream/url", view_only, expires_in, request_timeout))

    @op
    def status(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Whether the viewer runs: ``{"running", "port", "view_only_port"}``.

        Example::

            running = machine.desktop.stream.status()["running"]
        """
        return (yield from _json(Request("GET", f"{_base(self._machine_id)}/stream", timeout=request_timeout)))

    @op
    def stop(self, *, request_timeout: Optional[float] = None) -> Gen:
        """Stops the viewer: its connections close and its URLs' grants are revoked.

        Example::

            machine.desktop.stream.stop()
        """
        yield from _json(Request("DELETE", f"{_base(self._machine_id)}/stream", timeout=request_timeout))


class DesktopRecordingsOps:
    """``machine.desktop.recordings``: screen recordings kept in the machine."""

    @op
    def start(self, fps: int = 10, *, request_timeout: Optional[float] = None) -> Gen:
        """Starts recording the screen; returns the :class:`Recording` (its ``id``).

        Example::

            rec = machine.desktop.recordings.start(fps=10)
        """
        wire = yield from _json(
            Request("POST", f"{_base(self._machine_id)}/recordings", json={"fps": fps}, timeout=request_timeout)
        )
        return Recording.from_dict(wire)

    @op
    def stop(self, recording_id: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Stops a recording; its file is complete when this returns.

        Example::

            machine.desktop.recordings.stop(rec.id)
        """
        path = f"{_base(self._machine_id)}/recordings/{seg(recording_id)}/stop"
        return Recording.from_dict((yield from _json(Request("POST", path, timeout=request_timeout))))

    @op
    def list(self, *, request_timeout: Optional[float] = None) -> Gen:
        """The machine's recordings, oldest first.

        Example::

            for rec in machine.desktop.recordings.list():
                print(rec.id, rec.status, rec.size_bytes)
        """
        wire = yield from _json(Request("GET", f"{_base(self._machine_id)}/recordings", timeout=request_timeout))
        return [Recording.from_dict(r) for r in wire["items"]]

    @op
    def download(self, recording_id: str, *, request_timeout: Optional[float] = None) -> Gen:
        """A recording's MP4 bytes.

        Example::

            open("run.mp4", "wb").write(machine.desktop.recordings.download(rec.id))
        """
        path = f"{_base(self._machine_id)}/recordings/{seg(recording_id)}/file"
        resp = yield Call(Request("GET", path, timeout=0 if request_timeout is None else request_timeout))
        p.raise_for_status(resp)
        return resp.body

    @op
    def delete(self, recording_id: str, *, request_timeout: Optional[float] = None) -> Gen:
        """Deletes a recording (stopping it first if it runs).

        Example::

            machine.desktop.recordings.delete(rec.id)
        """
        path = f"{_base(self._machine_id)}/recordings/{seg(recording_id)}"
        yield from _json(Request("DELETE", path, timeout=request_timeout))
