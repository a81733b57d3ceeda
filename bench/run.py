"""The project's benchmark: our build against a naive Python baseline, on one corpus, in one run.

    python bench/run.py --pages 5000 --commits 2000 [--peers] [--corpus DIR]

Prints a table of cold full build (all bundles, history, feeds, search, audit), no-change rebuild,
one-page-body and one-page-title rebuilds (by `sitegen build` with its cache, and by the incremental
path `sitegen serve` uses, with the search index and audit that follow it there; the same for a body
edit of the public home page, whose text is no secret of any bundle), history
extraction alone, audit alone (after the build, with what it saved, and with --no-cache), peak memory
and output size per page; and, measured the same way on
the same corpus, the naive baseline (front matter + Python-Markdown + a trivial Jinja2 template, one
bundle) with 1 and 2 processes, so every figure is also a ratio. `--peers` adds Hugo, MkDocs and
Pelican when they are installed. Timings are wall-clock on this machine; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from corpus import STAMP, make_corpus  # noqa: E402

NAIVE = r'''
import sys, os, yaml, markdown, jinja2
from multiprocessing import Pool
from pathlib import Path
root, out, procs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
template = jinja2.Template("<!DOCTYPE html><html><head><title>{{ title }}</title></head><body><h1>{{ title }}</h1>{{ body }}</body></html>")
def one(path):
    text = path.read_text(encoding="utf-8")
    _, meta, body = text.split("---\n", 2)
    data = yaml.safe_load(meta)
    html = markdown.markdown(body, extensions=["tables", "fenced_code"])
    target = out / path.relative_to(root).with_suffix("") / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(template.render(title=data.get("title", ""), body=html), encoding="utf-8")
files = sorted((root / "content").rglob("*.md"))
if procs == 1:
    for f in files: one(f)
else:
    with Pool(procs) as pool: pool.map(one, files, chunksize=32)
'''


def timed(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, int]:
    """Wall time and the peak RSS (MiB) of the largest process of the command's tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) // 1024


def python_inline(code: str, cwd: Path) -> float:
    """The seconds that `code` prints as its last line (it times only what it measures: not the
    interpreter's start, the imports or reading the site)."""
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def edit(path: Path, title: bool) -> None:
    text = path.read_text(encoding="utf-8")
    if title:
        text = text.replace("title: ", "title: Renamed ", 1)
    else:
        text = text.rstrip("\n") + "\n\nOne more sentence for the benchmark.\n"
    path.write_text(text, encoding="utf-8")


def incremental(corpus: Path, page: Path) -> tuple[float, ...]:
    """Body and title edits through the rebuild path that `sitegen serve` uses (in-process, warm):
    the time until the changed pages are written and open pages reload, and then the time of the
    search index and audit that `serve` runs right after the reload; then the same for a body edit
    of the home page (public: its text is no secret of any bundle, so the audit's table of secrets
    stays as it was)."""
    code = f'''
import time, sys
from pathlib import Path
sys.path.insert(0, {str(HERE)!r})
from run import edit
from ipo_sitegen.build import Options
from ipo_sitegen.live import LiveBuild
live = LiveBuild(Path({str(corpus)!r}), Options(out=Path({str(corpus / "serve-out")!r})))
live.full()
def timed(page, title):
    edit(page, title); t = time.perf_counter(); live.update({{str(page)}}, audit=False); update = time.perf_counter() - t
    t = time.perf_counter(); live.settle(); return update, time.perf_counter() - t
page, home = Path({str(page)!r}), Path({str(corpus / "content" / "_index.md")!r})
(body, settle_body), (title, _), (home_body, settle_home) = timed(page, False), timed(page, True), timed(home, False)
print(body, title, settle_body, home_body, settle_home)
'''
    out = subprocess.run([sys.executable, "-c", code], cwd=corpus, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return (float("nan"),) * 5
    return tuple(float(value) for value in out.stdout.split()[-5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--corpus", type=Path, help="reuse or create the corpus here (default: a temp folder)")
    parser.add_argument("--peers", action="store_true", help="also time hugo, mkdocs and pelican when installed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="sitegen-bench-")) / "site"
    stamp = corpus / STAMP
    if not (stamp.is_file() and stamp.read_text() == f"{args.pages} {args.commits}"):
        started = time.perf_counter()
        make_corpus(corpus, args.pages, args.commits)
        print(f"corpus: {args.pages} pages, {args.commits} commits, made in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    sitegen = [sys.executable, "-m", "ipo_sitegen"]
    env = {"SOURCE_DATE_EPOCH": "1790000000"}
    rows: dict[str, float] = {}

    for folder in ("build", ".sitegen-cache", "naive-1", "naive-2", "serve-out"):
        shutil.rmtree(corpus / folder, ignore_errors=True)
    rows["naive baseline, 1 process, 1 bundle (s)"] = timed([sys.executable, "-c", NAIVE, ".", "naive-1", "1"], corpus)[0]
    rows["naive baseline, 2 processes, 1 bundle (s)"] = timed([sys.executable, "-c", NAIVE, ".", "naive-2", "2"], corpus)[0]
    cold, peak = timed([*sitegen, "build", "--quiet", "--no-cache"], corpus, env)
    shutil.rmtree(corpus / "build")
    rows["cold full build: 3 bundles, history, feeds, search, audit (s)"] = cold
    rows["peak memory of one process (MiB)"] = peak
    timed([*sitegen, "build", "--quiet"], corpus, env)  # warms the cache
    rows["no-change rebuild, warm cache (s)"] = timed([*sitegen, "build", "--quiet"], corpus, env)[0]
    page = sorted((corpus / "content").rglob("*.md"))[len(list((corpus / "content").rglob("*.md"))) // 2]
    for what, title in (("body", False), ("title", True)):
        edit(page, title)
        rows[f"one page's {what} edited, then `sitegen build`, warm cache (s)"] = timed([*sitegen, "build", "--quiet"], corpus, env)[0]
    subprocess.run(["git", "checkout", "-q", "--", "content"], cwd=corpus, check=True)
    body, title, settle, home, settle_home = incremental(corpus, page)
    rows["one page's body edited, incremental, until reload (s)"] = body
    rows["one page's title edited, incremental, until reload (s)"] = title
    rows["then search index + audit of the body edit (s)"] = settle
    rows["the (public) home page's body edited, incremental, until reload (s)"] = home
    rows["then search index + audit of that edit (s)"] = settle_home
    subprocess.run(["git", "checkout", "-q", "--", "content"], cwd=corpus, check=True)
    rows["history extraction alone (s)"] = python_inline(
        "import time;from pathlib import Path;from ipo_sitegen.build import read_site;from ipo_sitegen.history import read_git, History\n"
        "c,s,g,p=read_site(Path('.'));t=time.perf_counter();h=History(c,s,g,read_git(c.root,use_cache=False))\n"
        "[h.changes_for(b) for b in c.bundles];print(time.perf_counter()-t)", corpus)
    audit = subprocess.run([*sitegen, "audit"], cwd=corpus, capture_output=True, text=True)
    started = time.perf_counter()
    subprocess.run([*sitegen, "audit"], cwd=corpus, capture_output=True, text=True)
    rows["audit alone, all bundles, after the build (s)"] = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([*sitegen, "audit", "--no-cache"], cwd=corpus, capture_output=True, text=True)
    rows["audit alone, all bundles, --no-cache (s)"] = time.perf_counter() - started
    if audit.returncode != 0:
        print(audit.stderr[-2000:], file=sys.stderr)
    html = sum(p.stat().st_size for p in (corpus / "build").rglob("*") if p.is_file())
    pages = sum(json.loads((m).read_text())["files"].__len__() for m in (corpus / "build").glob("*/manifest.json"))
    rows["output size per page, all bundles (KiB)"] = html / 1024 / max(1, args.pages)
    public_html = sum(p.stat().st_size for p in (corpus / "build/public").rglob("*.html"))
    public_search = sum(p.stat().st_size for p in (corpus / "build/public/search").rglob("*.js"))
    rows["public search index / public HTML (%)"] = 100 * public_search / max(1, public_html)

    if args.peers:
        for name, command in (("hugo", ["hugo", "--quiet"]), ("mkdocs", ["mkdocs", "build", "-q"]), ("pelican", ["pelican", "content"])):
            if shutil.which(command[0]):
                try:
                    rows[f"{name} clean build (s)"] = timed(command, corpus)[0]
                except SystemExit as exc:
                    print(f"{name}: {exc}", file=sys.stderr)
            else:
                print(f"{name}: not installed, skipped", file=sys.stderr)

    base = rows["naive baseline, 2 processes, 1 bundle (s)"]
    print(f"\nipo-sitegen benchmark: {args.pages} pages, {args.commits} commits, {os.cpu_count()} cores\n")
    print("| measure | value | ratio to naive 2-process |\n|---|---:|---:|")
    for name, value in rows.items():
        ratio = f"{value / base:.2f}×" if name.endswith("(s)") else ""
        print(f"| {name} | {value:.2f} | {ratio} |")
    print(f"\n(cold build / no-change rebuild: {rows['cold full build: 3 bundles, history, feeds, search, audit (s)'] / max(1e-9, rows['no-change rebuild, warm cache (s)']):.1f}×; "
          f"audit / cold build: {rows['audit alone, all bundles, after the build (s)'] / rows['cold full build: 3 bundles, history, feeds, search, audit (s)']:.2f}, "
          f"with --no-cache {rows['audit alone, all bundles, --no-cache (s)'] / rows['cold full build: 3 bundles, history, feeds, search, audit (s)']:.2f}; "
          f"files in all bundles: {pages})")
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
