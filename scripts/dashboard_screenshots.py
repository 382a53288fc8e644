"""Screenshots (PNG) of the dashboard's main pages, from a running node, for docs/dashboard/.

    .venv/bin/python scripts/dashboard_screenshots.py --url http://127.0.0.1:8000 [--contributor 0x...] \
        [--out docs/dashboard] [--chromium /usr/bin/chromium]

Pages: the overview, the first datanet, the first adapter (with its benchmark chart), the newest
answer with highlighted spans (else the newest answer), the epochs, and a contributor (the one
given, else the first listed). Drives Debian's chromium headless through Playwright (pip
`playwright`; no `playwright install`, no internet). tests/test_dashboard.py calls :func:`capture`
on its own node when LORALEDGER_DASHBOARD_SCREENSHOTS names a folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["capture", "chromium_path"]

ROOT = Path(__file__).resolve().parents[1]


def chromium_path(given: str | None = None) -> str | None:
    """The Chromium to drive: ``given``, else Debian's ``chromium`` on PATH or in /usr/bin."""
    for candidate in (given, shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def capture(url: str, out: Path, *, contributor: str | None = None, chromium: str | None = None,
            width: int = 1280, browser: Any = None) -> list[Path]:
    """Save ``overview.png``, ``datanet.png``, ``adapter.png``, ``inference.png``, ``epochs.png`` and
    ``contributor.png`` of the node at ``url`` into ``out`` (a page with nothing to show is skipped).
    ``browser``: a Playwright browser already launched (else Chromium is launched here)."""
    if browser is not None:
        return _capture(browser, url, out, contributor=contributor, width=width)
    from playwright.sync_api import sync_playwright

    executable = chromium_path(chromium)
    if executable is None:
        raise SystemExit("no chromium found: apt-get install chromium, or pass --chromium PATH")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            return _capture(launched, url, out, contributor=contributor, width=width)
        finally:
            launched.close()


def _capture(browser: Any, url: str, out: Path, *, contributor: str | None, width: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    base = url.rstrip("/") + "/dashboard"
    saved: list[Path] = []
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()

    def links() -> list[str]:
        return [href for href in page.locator("main a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
                if href]

    def shot(name: str, target: str) -> None:
        response = page.goto(target if target.startswith("http") else url.rstrip("/") + target)
        assert response is not None and response.ok, f"{target}: {response and response.status}"
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)

    shot("overview", base + "/")
    for name, listing in (("datanet", "/datanets"), ("adapter", "/adapters")):
        page.goto(base + listing)
        found = [href for href in links() if href.startswith(f"/dashboard{listing}/")]
        if found:
            shot(name, found[0])
    page.goto(base + "/inferences")
    answers = [href for href in links() if href.startswith("/dashboard/inferences/")]
    chosen = answers[0] if answers else None
    for link in answers:
        page.goto(url.rstrip("/") + link)
        if page.locator("#answer mark").count():
            chosen = link
            break
    if chosen:
        shot("inference", chosen)
    shot("epochs", base + "/epochs")
    if contributor is None:
        page.goto(base + "/contributors")
        found = [href for href in links() if href.startswith("/dashboard/contributors/")]
        contributor = found[0].rsplit("/", 1)[-1] if found else None
    if contributor:
        shot("contributor", f"{base}/contributors/{contributor}")
    context.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the node's URL (e.g. http://127.0.0.1:8000)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard", help="folder for the PNGs")
    parser.add_argument("--contributor", help="the address of the contributor page to capture")
    parser.add_argument("--chromium", help="the Chromium executable (default: Debian's chromium)")
    args = parser.parse_args(argv)
    for path in capture(args.url, args.out, contributor=args.contributor, chromium=args.chromium):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
