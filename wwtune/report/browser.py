"""Screenshots of a report in headless Chromium (Debian package ``chromium``), for tests and the README."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["find_chromium", "screenshot"]


def find_chromium() -> str | None:
    """Path of a Chromium executable (``chromium``, ``chromium-browser``, ``/usr/bin/chromium``) or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    *,
    width: int = 1280,
    height: int = 4000,
    chromium: str | None = None,
    timeout_s: float = 180.0,
) -> Path:
    """Render ``html_path`` in headless Chromium and write a ``width`` × ``height`` PNG screenshot.

    Args:
        html_path: the page to render (a local file; opened as a ``file://`` URI).
        png_path: where to write the screenshot.
        width: viewport width in CSS pixels (device scale factor 1). Default 1280.
        height: viewport height; the screenshot covers only the viewport, so make it as tall as the
            page. Default 4000.
        chromium: the browser executable; default :func:`find_chromium`.
        timeout_s: seconds before the browser is killed. Default 180.

    Networking, sync, component updates and the GPU are off; a throw-away profile is used. Raises
    ``FileNotFoundError`` when no Chromium is installed and ``RuntimeError`` when it writes no image.
    """
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive but got {width}×{height}.")
    html_path = Path(html_path)
    if not html_path.is_file():
        raise FileNotFoundError(f"No page to render at {html_path}.")
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium).")
    out = Path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="wwtune-chromium-") as profile:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            "--force-device-scale-factor=1", f"--user-data-dir={profile}", f"--screenshot={out.resolve()}",
            f"--window-size={width},{height}", html_path.resolve().as_uri(),
        ]  # fmt: skip
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "HOME": profile}
        )
    if not out.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return out
