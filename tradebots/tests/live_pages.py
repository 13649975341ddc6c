"""What a rendered page declares to its live-updates socket (partials/live_watch.html)."""

import re

_FORM = re.compile(r'<form hidden class="live-watch"[^>]*>(.*?)</form>', re.S)
_INPUT = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def declarations(html: str) -> dict[str, dict]:
    """{group: {"rows": [pk, ...] or None, "newest": bool}} for each declaration in ``html``."""
    declared = {}
    for form in _FORM.findall(html):
        values = dict(_INPUT.findall(form))
        rows = values["rows"].split() if "rows" in values else None
        declared[values["watch"]] = {"rows": rows, "newest": values.get("newest") == "1"}
    return declared


async def declare(communicator, watch: str, rows=None, newest: bool = False) -> str:
    """Declare what a test socket's page shows, as partials/live_watch.html does, and wait for
    the socket's confirmation (a push sent before it would miss the socket)."""
    declaration = {"watch": watch}
    if rows is not None:
        declaration["rows"] = " ".join(str(pk) for pk in rows)
    if newest:
        declaration["newest"] = "1"
    await communicator.send_json_to(declaration)
    confirmation = await communicator.receive_from(timeout=10)
    assert confirmation.startswith('<div id="live-watching"'), confirmation
    return confirmation
