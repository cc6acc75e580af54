"""The code interpreter's stream reading without a server: NDJSON lines split anywhere across
reads, callbacks as effects, the Execution they make."""

from __future__ import annotations

import json
from typing import Any, List

from nullspace import _protocol as p
from nullspace._ops.code import _follow
from nullspace.models import Execution

EVENTS = [
    {"type": "start", "execution_id": "cex_0123456789abcdef", "context_id": "default-python", "language": "python"},
    {"type": "stdout", "text": "hello\n"},
    {"type": "result", "is_main_result": True, "text": "42", "artifact_ids": ["art_1"]},
    {"type": "error", "name": "ValueError", "value": "bad", "traceback": ["tb"]},
    {"type": "end", "execution_count": 2, "duration_ms": 1.25},
]


def drive(chunks: List[bytes], callbacks: Any) -> Any:
    """Runs the operation, answering its reads with ``chunks`` and performing its callbacks."""
    gen = _follow(object(), Execution(), callbacks)
    feed = iter(chunks)
    value = None
    try:
        effect = next(gen)
        while True:
            if isinstance(effect, p.Read):
                effect = gen.send(next(feed, b""))
            elif isinstance(effect, p.Callback):
                effect.fn(*effect.args)
                effect = gen.send(None)
            else:
                raise AssertionError(f"unexpected effect {effect!r}")
    except StopIteration as stop:
        value = stop.value
    return value


def test_lines_split_anywhere_make_the_same_execution() -> None:
    body = "".join(json.dumps(e) + "\n" for e in EVENTS).encode()
    for size in (1, 3, 7, len(body)):
        seen: List[Any] = []
        ex = drive(
            [body[i : i + size] for i in range(0, len(body), size)],
            {"on_stdout": seen.append, "on_start": seen.append},
        )
        assert ex.id == "cex_0123456789abcdef" and ex.context_id == "default-python"
        assert ex.logs.stdout == ["hello\n"]
        assert seen == [{"execution_id": "cex_0123456789abcdef", "context_id": "default-python"}, "hello\n"]
        assert ex.text == "42" and ex.results[0].artifact_ids == ["art_1"]
        assert ex.error.name == "ValueError" and ex.error.traceback == ["tb"]
        assert (ex.execution_count, ex.done, ex.event_count) == (2, True, 5)


def test_an_interrupted_stream_is_not_done() -> None:
    body = (json.dumps(EVENTS[0]) + "\n" + json.dumps({"type": "interrupted", "reason": "hibernating"})).encode()
    ex = drive([body], {})
    assert ex.done is False and ex.interrupted == "hibernating" and ex.event_count == 1
