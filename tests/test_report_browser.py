"""report.html in a real browser: headless Chromium renders it and every embedded image must be on screen.

No JavaScript is involved: the page is screenshotted, each embedded PNG is decoded, and its pixels are
searched for, exactly, in the screenshot (the figures are shown at their natural size, so a loaded image
appears pixel for pixel; a broken one does not). A negative control corrupts one image and checks that
exactly that one is reported missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from PIL import Image
from report_fixtures import decode_image, parse_page, synthetic_study

from wwtune.report import write_report
from wwtune.report.browser import find_chromium, screenshot

optuna.logging.set_verbosity(optuna.logging.WARNING)


CHROMIUM = find_chromium()
_NO_CHROMIUM = (
    "headless Chromium is not installed (Debian package `chromium`; CI installs it in "
    ".ci/install-system-deps) - the browser test cannot run here"
)
if CHROMIUM is None and os.environ.get("WWTUNE_REQUIRE_SYSTEM_TESTS"):  # CI: a missing binary fails
    raise RuntimeError(f"WWTUNE_REQUIRE_SYSTEM_TESTS is set but {_NO_CHROMIUM}")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=_NO_CHROMIUM)
HEADER_RGB = (0x1F, 0x4E, 0x79)  # the report's header colour (CSS in wwtune/report/html.py)


def shot_of(page: Path, out: Path, height: int) -> np.ndarray:
    with Image.open(screenshot(page, out, width=1280, height=height)) as im:
        return np.asarray(im.convert("RGB"))


def packed(rgb: np.ndarray) -> np.ndarray:
    """RGB pixels packed into one int per pixel, so colours compare and count as plain integers."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def locate(shot: np.ndarray, image: Image.Image) -> tuple[int, int] | None:
    """Top-left corner where ``image`` appears pixel for pixel in ``shot`` (its rounded corners aside)."""
    a = packed(np.asarray(image.convert("RGB")))
    s = packed(shot)
    h, w = a.shape
    H, W = s.shape
    if w > W or h > H:
        return None
    r = int(np.argmax([len(np.unique(a[i])) for i in range(4, h - 4, 7)])) * 7 + 4  # a busy row
    row = a[r]
    values, counts = np.unique(row, return_counts=True)
    k0 = int(np.flatnonzero(row == values[np.argmin(counts)])[0])  # anchor on the row's rarest colour
    ys, xs = np.nonzero(s[:, k0 : W - w + 1 + k0] == row[k0])
    keep = np.all(s[ys[:, None], xs[:, None] + np.arange(w)] == row, axis=1) if len(ys) else []
    for y, x in zip(ys[keep], xs[keep], strict=True):
        top = int(y) - r
        if 0 <= top <= H - h and np.array_equal(
            s[top + 4 : top + h - 4, x + 4 : x + w - 4], a[4 : h - 4, 4 : w - 4]
        ):
            return top, int(x)
    return None


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    path = write_report(synthetic_study(), root / "report.html")
    text = path.read_text(encoding="utf-8")
    images = [decode_image(src)[1] for src in parse_page(text).images]
    height = sum(im.size[1] for im in images) + 3500
    shot = shot_of(path, root / "shot.png", height)
    return text, images, shot, root


def test_every_image_is_displayed_and_the_page_is_not_blank(rendered):
    _, images, shot, _ = rendered
    assert len(images) == 5
    where = [locate(shot, im) for im in images]
    assert all(w is not None for w in where), (
        f"images not on screen: {[i for i, w in enumerate(where) if w is None]}"
    )
    assert len(set(where)) == len(images) and [y for y, _ in where] == sorted(y for y, _ in where)
    colours = np.unique(packed(shot))
    assert len(colours) > 500  # text, plots and tables, not an empty page
    header = np.all(np.abs(shot[:60].astype(int) - HEADER_RGB) <= 2, axis=2).mean()
    assert header > 0.5, f"the header colour covers only {header:.0%} of the top of the page"
    plot_blue = np.all(np.abs(shot.astype(int) - (0x1F, 0x77, 0xB4)) <= 2, axis=2).sum()
    assert plot_blue > 500  # the blue markers/lines of the plots are drawn


def test_a_broken_image_is_detected(rendered):
    text, images, _, root = rendered
    srcs = parse_page(text).images
    victim = 2
    payload = srcs[victim].partition(",")[2]
    broken_src = "data:image/png;base64," + "QUJD" * 64 + payload[: len(payload) // 3]  # garbage + truncated
    broken = text.replace(srcs[victim], broken_src)
    assert not re.search(r"<script", broken)
    with pytest.raises(Exception):  # noqa: B017 - any decoding error proves the check bites
        decode_image(broken_src)
    page = root / "broken.html"
    page.write_text(broken, encoding="utf-8")
    height = sum(im.size[1] for im in images) + 3500
    shot = shot_of(page, root / "broken.png", height)
    missing = [i for i, im in enumerate(images) if locate(shot, im) is None]
    assert missing == [victim]
