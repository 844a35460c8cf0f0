"""A screenshot of `marl-tui serve` in a real browser (headless Chromium), for screenshots/.

    .venv/bin/python scripts/serve_screenshot.py [--keys enter] [--out screenshots/serve-picker.png]

Starts `marl-tui serve` on a free localhost port and Chromium headless with its DevTools
protocol, opens the page, waits until the app's first bytes reach it and then `--settle`
seconds (the terminal is a canvas, so its text cannot be waited for), optionally presses keys
(e.g. `enter` starts the highlighted run) and waits `--after` seconds, then saves a PNG.
Chromium is driven over its DevTools websocket with aiohttp (textual-serve's own dependency);
nothing else is installed. Needs a chromium binary (Debian: apt-get install chromium); not
part of the tests or CI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"enter": ("Enter", 13, "\r"), "down": ("ArrowDown", 40, ""), "space": ("Space", 32, " ")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s")


class DevTools:
    """Just enough of the Chrome DevTools Protocol: numbered calls over one websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def app_drawing(self) -> bool:
        """The app's first bytes reached the page (textual-serve then shows its terminal)."""
        result = await self.call("Runtime.evaluate", returnByValue=True,
                                 expression="document.body.classList.contains('-first-byte')")
        return bool(result.get("result", {}).get("value"))

    async def press(self, key: str) -> None:
        await self.call("Runtime.evaluate",  # keys go to the terminal's input, as after a click
                        expression="document.querySelector('.xterm-helper-textarea').focus()")
        name, code, text = KEYS[key]
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key=name, code=name,
                            windowsVirtualKeyCode=code, text=text if kind == "keyDown" else "")


async def shoot(url: str, devtools_port: int, out: Path, keys: list[str], settle: float, after: float,
                timeout: float) -> None:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + timeout
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{devtools_port}/json") as r:
                    pages = [p for p in await r.json() if p.get("type") == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("Chromium's DevTools did not answer")
            await asyncio.sleep(0.2)
        async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tab = DevTools(ws)
            await tab.call("Page.enable")
            await tab.call("Page.navigate", url=url)
            while not await tab.app_drawing():
                if time.monotonic() > deadline:
                    raise SystemExit(f"the app did not draw within {timeout:.0f} s (does `marl-tui` start here?)")
                await asyncio.sleep(0.25)
            await asyncio.sleep(settle)  # the terminal is a canvas: its text cannot be waited for
            for key in keys:
                await tab.press(key)
                await asyncio.sleep(0.3)
            await asyncio.sleep(after)
            shot = await tab.call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots" / "serve-picker.png")
    parser.add_argument("--keys", nargs="*", default=[], choices=sorted(KEYS))
    parser.add_argument("--settle", type=float, default=4.0,
                        help="seconds from the app's first bytes to the keys (the picker's answers load)")
    parser.add_argument("--after", type=float, default=1.0, help="seconds to wait after the keys")
    parser.add_argument("--size", default="1280,800", help="the browser window, WIDTH,HEIGHT")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("no chromium found: apt-get install chromium")
    port, devtools_port = free_port(), free_port()
    marl = Path(sys.executable).with_name("marl-tui")
    server = subprocess.Popen([str(marl), "serve", "--port", str(port), "--command", str(marl)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                    f"--window-size={args.size}", f"--remote-debugging-port={devtools_port}",
                                    f"--user-data-dir={profile}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, args.timeout)
            asyncio.run(shoot(f"http://localhost:{port}/", devtools_port, args.out, args.keys, args.settle,
                              args.after, args.timeout))
            print(args.out)
        finally:
            browser.terminate()
            server.terminate()
            browser.wait(10)
            server.wait(10)


if __name__ == "__main__":
    main()
