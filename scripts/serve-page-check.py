#!/usr/bin/env python3
"""mt-serve's page in a real browser: headless Chromium (Debian's, driven by Playwright) opens the page,
types a sentence, waits for the translation, turns on n-best and attention, and takes a screenshot.
Prints one JSON object (the translation, the n-best entries, the heatmap's size, requests that left
loopback); exits 1 when the page shows no translation. Loopback only.

Usage: serve-page-check.py URL SENTENCE [--screenshot FILE] [--chromium /usr/bin/chromium]
"""
import argparse
import json
import urllib.parse

from playwright.sync_api import sync_playwright


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("sentence")
    parser.add_argument("--screenshot")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    assert urllib.parse.urlparse(args.url).hostname in ("127.0.0.1", "localhost"), "the page is on loopback"
    elsewhere = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.on("request", lambda request: None if urllib.parse.urlparse(request.url).hostname in ("127.0.0.1", "localhost")
                else elsewhere.append(request.url))
        page.goto(args.url)
        page.wait_for_function("document.querySelectorAll('#pair option').length > 0")
        page.fill("#source", "")
        page.type("#source", args.sentence, delay=20)
        page.wait_for_function("document.getElementById('translation').textContent.length > 0", timeout=30000)
        translation = page.text_content("#translation")
        page.check("#showNBest")
        page.wait_for_function("document.querySelectorAll('#nbest li').length > 1", timeout=30000)
        page.check("#showHeatmap")
        page.wait_for_function("document.querySelectorAll('#heatmap tr').length > 1", timeout=30000)
        nbest = page.eval_on_selector_all("#nbest li", "items => items.map(i => i.textContent)")
        rows = page.eval_on_selector_all("#heatmap tr", "rows => rows.length")
        if args.screenshot:
            page.screenshot(path=args.screenshot, full_page=True)
        browser.close()
    print(json.dumps({"translation": translation, "nbest": nbest, "heatmap_rows": rows, "requests_elsewhere": elsewhere}))
    raise SystemExit(0 if translation else 1)


if __name__ == "__main__":
    main()
