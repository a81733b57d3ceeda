"""Search benchmark: index size against the bundle's HTML, and time to first results in Chromium.

Build a corpus first (bench/corpus.py), then point this at the built bundle:

    python bench/corpus.py /tmp/bench5k --pages 5000 --commits 10
    (cd /tmp/bench5k && sitegen build -q)
    python bench/search_bench.py /tmp/bench5k/build/public

Size: every file under search/ against every .html file of the bundle (search/index.html counts as
HTML). Latency: the bundle is served over HTTP on 127.0.0.1; in the search page, a query is typed key
by key (as a reader types, each key starting a search) and the time is taken from the last keystroke
to the moment the result list for the whole query is in the page (performance.now() in the page, so
the test driver's overhead is not counted). Each query's shards are loaded cold, the first time.
Chromium is Debian's (/usr/bin/chromium or $SITEGEN_CHROMIUM), driven by Playwright.

With --build SITE instead: the time it takes to build the search index of every bundle of SITE, the
rest of the build left out (the site is planned once; each round starts with no memo, and the page
bodies are finalised before the clock starts, as a build does for the pages themselves):

    SOURCE_DATE_EPOCH=1790000000 python bench/search_bench.py --build /tmp/bench5k
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

CHROMIUM = os.environ.get("SITEGEN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]

# In the page: note the time of every key press, and resolve when the answer to the current text is shown.
WATCH = """
() => {
  window.__bench = { lastKey: 0 };
  document.addEventListener('keydown', e => { window.__bench.lastKey = performance.now(); }, true);
}
"""
WAIT = """
(query) => new Promise(resolve => {
  const status = document.getElementById('search-status');
  const done = () => {
    const text = status.textContent;
    if (document.getElementById('search-results').getAttribute('data-query') !== query) return false;
    resolve({ ms: performance.now() - window.__bench.lastKey, status: text,
              results: document.querySelectorAll('.search-result').length });
    return true;
  };
  if (done()) return;
  const observer = new MutationObserver(() => { if (done()) observer.disconnect(); });
  observer.observe(document.getElementById('main'), { childList: true, subtree: true, characterData: true });
})
"""


def sizes(bundle: Path) -> tuple[int, int, int]:
    html = sum(p.stat().st_size for p in bundle.rglob("*.html"))
    search = sum(p.stat().st_size for p in (bundle / "search").glob("*.js"))
    shards = len(list((bundle / "search").glob("shard-*.js")))
    return html, search, shards


def vocabulary(bundle: Path) -> tuple[list[str], dict]:
    """Terms by number of pages, most common first, and docs.js as data (to pick realistic queries)."""
    counts: Counter[str] = Counter()
    for shard in sorted((bundle / "search").glob("shard-*.js")):
        text = shard.read_text(encoding="utf-8")
        terms = json.loads(text[text.index(",") + 1 : text.rindex(")")])
        for term, postings in terms.items():
            counts[term] = len(re.findall(r"[0-9!#$%()*+\-.:;=?@\[\]^{|}~]", postings))  # a rough size
    docs_text = (bundle / "search" / "docs.js").read_text(encoding="utf-8")
    docs = json.loads(docs_text[docs_text.index("(") + 1 : docs_text.rindex(")")])
    words = [t for t, _ in counts.most_common() if t.isalpha() and len(t) > 3]
    return words, docs


def queries(words: list[str], docs: dict) -> list[str]:
    common, middle, rare = words[:20], words[len(words) // 3 : len(words) // 3 + 20], words[-40:]
    titles = docs["pages"]["title"]
    title = titles[len(titles) // 2].split()
    label = docs["labels"][0][0] if docs["labels"] else "x"
    return [common[0], middle[1], rare[2], f"{common[3]} {middle[4]}", f'"{" ".join(title[:2])}"',
            f"{middle[5][:4]}*", f"{common[6]} -{common[7]}", f"title:{title[0]}", f"{middle[8]} label:{label}",
            f"{rare[9]} OR {rare[10]}", f"{common[11]} {common[12]} {middle[13]}", rare[14], middle[15], common[16]]


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def build_times(site: Path, rounds: int) -> None:
    """Print the CPU and wall time of the search index of each bundle, and of all, best of `rounds`."""
    from ipo_sitegen import search
    from ipo_sitegen.build import BundleOutput, Options, plan
    from ipo_sitegen.write import BundleWriter

    result = plan(site, Options())
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for n in range(rounds):
            outputs = [BundleOutput(result, bundle, BundleWriter(Path(folder) / f"{n}-{bundle.name}")) for bundle in result.bundles]
            for output in outputs:
                for page in output.pages:
                    output.body(page)
            search.forget()
            spent = {}
            for output in outputs:
                cpu, wall = time.process_time(), time.perf_counter()
                output.search()
                spent[output.bundle.name] = time.process_time() - cpu, time.perf_counter() - wall
            spent["all bundles"] = tuple(map(sum, zip(*spent.values())))
            best = {name: min(times, best.get(name, times)) for name, times in spent.items()}
    for name, (cpu, wall) in best.items():
        print(f"{name:12} CPU {cpu:6.2f} s, wall {wall:6.2f} s (best of {rounds})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="a built bundle, e.g. build/public (with --build: a site)")
    parser.add_argument("--delay", type=int, default=60, help="milliseconds between key presses")
    parser.add_argument("--build", action="store_true", help="time the building of the search index instead")
    parser.add_argument("--rounds", type=int, default=3, help="with --build: rounds to take the best of")
    args = parser.parse_args()
    if args.build:
        build_times(args.bundle.resolve(), args.rounds)
        return 0
    bundle = args.bundle.resolve()

    html, search, shards = sizes(bundle)
    words, docs = vocabulary(bundle)
    files = sum(1 for _ in bundle.rglob("*.html"))
    urls = docs["pages"]["url"]
    page_html = sum((bundle / url / "index.html").stat().st_size for url in urls)
    print(f"bundle {bundle}: {len(urls)} pages; {files} HTML files, {html / 1e6:.1f} MB "
          f"(the pages alone, without history, diffs and label lists: {page_html / 1e6:.1f} MB)")
    print(f"search index: {search / 1e6:.2f} MB in docs.js + {shards} shards = {100 * search / html:.1f}% of the "
          f"bundle's HTML, {100 * search / page_html:.1f}% of the pages' HTML")
    docs_size = (bundle / "search" / "docs.js").stat().st_size
    largest = max(p.stat().st_size for p in (bundle / "search").glob("shard-*.js"))
    print(f"docs.js {docs_size / 1e6:.2f} MB; largest shard {largest / 1e3:.0f} kB")

    from playwright.sync_api import sync_playwright

    httpd, base = serve(bundle)
    timings: dict[str, list[float]] = {"http": [], "file": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for kind, search_page in (("http", base + "search/"), ("file", (bundle / "search" / "index.html").as_uri())):
                page = browser.new_page()
                page.goto(search_page)
                page.wait_for_load_state("networkidle")  # docs.js loads with the page, before any typing
                page.evaluate(WATCH)
                for query in queries(words, docs):
                    page.fill("#search-input", "")
                    page.click("#search-input")
                    page.keyboard.type(query, delay=args.delay)
                    answer = page.evaluate(WAIT, query)
                    timings[kind].append(answer["ms"])
                    print(f"  {kind:4} {answer['ms']:6.1f} ms  {query!r}: {answer['status']}")
                page.close()
            # Opening a bookmarked result list: from navigation to results, docs.js and shards all cold.
            page = browser.new_page()
            page.goto(base + "search/?q=" + words[3])
            page.wait_for_selector(".search-result")
            opened = page.evaluate("performance.now()")
            browser.close()
    finally:
        httpd.shutdown()
    for kind, values in timings.items():
        print(f"{kind}: last keystroke to results: median {statistics.median(values):.1f} ms, "
              f"max {max(values):.1f} ms over {len(values)} queries")
    print(f"a bookmarked ?q= page over http, from navigation to results: {opened:.0f} ms")
    worst = max(max(values) for values in timings.values())
    return 0 if worst <= 300 and search <= 0.3 * html else 1


if __name__ == "__main__":
    sys.exit(main())
