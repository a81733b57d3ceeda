"""A deterministic benchmark corpus: a site of N pages with a git history of M commits.

Pages sit in nested sections, with tiers mixed about 60/30/10 (public/registered/internal), gated
blocks, labels, cross links and attachments; the history (with renames) is written in one
`git fast-import` stream, so 2,000 commits take seconds, not minutes. Same arguments, same bytes.

    python bench/corpus.py /tmp/corpus --pages 5000 --commits 2000
"""

from __future__ import annotations

import argparse
import posixpath
import random
import shutil
import subprocess
from pathlib import Path

LABELS = ["management", "examiners", "it-professionals", "general-public", "security", "deployment",
          "access", "workshops", "trade-marks", "patents", "designs", "search", "fees", "e-filing",
          "classification", "archives", "statistics", "training", "legal", "support"]
TIERS = ["public"] * 6 + ["registered"] * 3 + ["internal"]
CONFIG = """\
[site]
title = "Benchmark Support Space"

[bundles.public]
tier = "public"
base_url = "https://bench.example.org/"

[bundles.restricted]
tier = "registered"
base_url = "https://bench.example.org/restricted/"

[bundles.internal]
tier = "internal"

[history]
recent = 10
"""


def _vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    syllables = ["ka", "to", "ri", "men", "sol", "va", "lin", "dor", "pe", "qua", "ser", "nu", "tal", "mi",
                 "gre", "fo", "bra", "zen", "ul", "tri", "an", "os", "ple", "cor", "vi", "da", "em", "sta"]
    words = {"".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


class Corpus:
    def __init__(self, pages: int, commits: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = _vocabulary(self.rng)
        self.n_pages = pages
        self.n_commits = commits
        self.sections: list[tuple[str, str | None]] = []  # (folder, audience)
        self.files: dict[str, str] = {}  # content path -> text
        self.binary: dict[str, bytes] = {}

    def sentence(self, low: int = 8, high: int = 20) -> str:
        words = self.rng.choices(self.words, k=self.rng.randint(low, high))
        return words[0].capitalize() + " " + " ".join(words[1:]) + "."

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(3, 7)))

    def make_sections(self) -> None:
        count = max(3, self.n_pages // 40)
        folders: list[str] = []
        for i in range(count):
            parent = self.rng.choice(folders) if folders and self.rng.random() < 0.5 and folders[-1].count("/") < 2 else ""
            name = f"{self.rng.choice(self.words)}-{i}"
            folder = posixpath.join(parent, name) if parent else name
            folders.append(folder)
            audience = self.rng.choice(TIERS) if not parent else (None if self.rng.random() < 0.7 else self.rng.choice(TIERS))
            self.sections.append((folder, audience))

    def page_text(self, title: str, audience: str | None, path: str, targets: list[str], extra: int = 0) -> str:
        rng = self.rng
        meta = [f"title: {title}"]
        if audience:
            meta.append(f"audience: {audience}")
        meta.append(f"summary: {self.sentence(6, 12)}")
        meta.append(f"labels: [{', '.join(rng.sample(LABELS, rng.randint(1, 3)))}]")
        meta.append(f"weight: {rng.randint(1, 100)}")
        body: list[str] = []
        words = 0
        target_words = rng.randint(600, 1500)
        section = 0
        while words < target_words:
            section += 1
            body.append(f"## {self.sentence(2, 5)[:-1]} {section}")
            for _ in range(rng.randint(2, 4)):
                paragraph = self.paragraph()
                words += paragraph.count(" ") + 1
                body.append(paragraph)
            roll = rng.random()
            if roll < 0.15:
                body.append("| Item | Value |\n|---|---|\n" + "\n".join(f"| {rng.choice(self.words)} | {rng.randint(1, 999)} |" for _ in range(4)))
            elif roll < 0.3:
                body.append("```bash\n" + "\n".join(f"ipoctl {rng.choice(self.words)} --{rng.choice(self.words)}" for _ in range(3)) + "\n```")
            elif roll < 0.4:
                body.append(f"!!! note\n    {self.sentence()}")
        if targets:
            links = ", ".join(f"[{rng.choice(self.words)}]({posixpath.relpath(t, posixpath.dirname(path))})" for t in targets)
            body.insert(1, f"See also {links}.")
        if rng.random() < 0.15:
            tier = rng.choice(["registered", "internal"])
            body.insert(2, f"::: audience {tier}\n\n{self.paragraph()}\n\n:::")
        for i in range(extra):
            body.append(f"Update {i}: {self.sentence()}")
        return "---\n" + "\n".join(meta) + "\n---\n\n" + "\n\n".join(body) + "\n"

    def build_pages(self) -> list[str]:
        self.make_sections()
        self.files["_index.md"] = f"---\ntitle: Benchmark home\naudience: public\n---\n\n{self.paragraph()}\n"
        for folder, audience in self.sections:
            meta = f"title: {folder.rsplit('/', 1)[-1].split('-')[0].capitalize()} section\n" + (f"audience: {audience}\n" if audience else "")
            self.files[f"{folder}/_index.md"] = f"---\n{meta}---\n\n{self.paragraph()}\n"
        paths = []
        for i in range(self.n_pages - len(self.sections) - 1):
            folder, _ = self.rng.choice(self.sections)
            paths.append(f"{folder}/{self.rng.choice(self.words)}-{i}.md")
        stable = paths[: len(paths) * 7 // 10]  # link targets; only the other pages are ever renamed
        self.movable = paths[len(stable) :]
        for path in paths:
            own = self.rng.choice(TIERS) if self.rng.random() < 0.2 else None
            targets = self.rng.sample(stable, 2)
            self.files[path] = self.page_text(self.sentence(2, 6)[:-1], own, path, targets)
            if self.rng.random() < 0.01:
                image = path[:-3] + ".png"
                self.binary[image] = bytes(self.rng.getrandbits(8) for _ in range(512))
                self.files[path] += f"\n![diagram]({posixpath.basename(image)})\n"
        return paths

    def fast_import(self, repo: Path) -> None:
        """Write the whole history as one fast-import stream: an import, then edits and renames."""
        rng = self.rng
        paths = self.build_pages()
        initial = dict(self.files)
        stream: list[bytes] = []
        time = 1_767_225_600  # 2026-01-01
        authors = [("Ann Example", "ann"), ("Bob Builder", "bob"), ("Cleo Writer", "cleo"), ("Dan Ops", "dan")]

        def commit(message: str, ops: list[bytes]) -> None:
            nonlocal time
            time += 3600
            name, login = rng.choice(authors)
            msg = message.encode()
            stream.append(b"commit refs/heads/main\n")
            stream.append(f"author {name} <{login}@example.org> {time} +0000\ncommitter {name} <{login}@example.org> {time} +0000\n".encode())
            stream.append(b"data %d\n%s\n" % (len(msg), msg))
            stream.extend(ops)

        def put(path: str, data: bytes) -> bytes:
            return b"M 100644 inline content/%s\ndata %d\n%s\n" % (path.encode(), len(data), data)

        batches = max(1, min(self.n_commits // 10, 20))
        items = sorted(initial.items())
        for b in range(batches):
            chunk = items[b::batches]
            ops = [put(p, t.encode()) for p, t in chunk] + ([put(p, d) for p, d in sorted(self.binary.items())] if b == 0 else [])
            commit(f"Import pages, part {b + 1}", ops)
        edits: dict[str, int] = {}
        live = list(paths)
        for c in range(self.n_commits - batches):
            ops = []
            if rng.random() < 0.03 and self.movable:
                old = rng.choice(self.movable)
                new = posixpath.join(posixpath.dirname(old), f"moved-{c}-{posixpath.basename(old)}")
                live[live.index(old)] = new
                self.movable[self.movable.index(old)] = new
                self.files[new] = self.files.pop(old)
                ops.append(b"R content/%s content/%s\n" % (old.encode(), new.encode()))
                commit(f"Move {posixpath.basename(old)}", ops)
                continue
            for path in rng.sample(live, rng.randint(1, 4)):
                edits[path] = edits.get(path, 0) + 1
                self.files[path] = self.files[path] + f"\nRevision {edits[path]}: {self.sentence()}\n"
                ops.append(put(path, self.files[path].encode()))
            commit(f"Update {len(ops)} page(s): {self.sentence(3, 6)[:-1]}", ops)
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(stream), check=True)
        (repo / "sitegen.toml").write_text(CONFIG)
        (repo / ".gitignore").write_text("/build/\n.sitegen-cache/\n")
        subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=repo, check=True)


STAMP = ".bench-corpus"  # in a folder this script made: "PAGES COMMITS"


def make_corpus(target: Path, pages: int, commits: int, seed: int = 7) -> Path:
    """Make the corpus in `target`, replacing an earlier corpus there, and never any other folder."""
    if target.exists():
        if any(target.iterdir()) and not (target / STAMP).is_file():
            raise SystemExit(f"{target} is not empty and is not a benchmark corpus (no {STAMP} in it): "
                             "pass a new or empty folder")
        shutil.rmtree(target)
    target.mkdir(parents=True)
    Corpus(pages, commits, seed).fast_import(target)
    (target / STAMP).write_text(f"{pages} {commits}")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    make_corpus(args.target, args.pages, args.commits, args.seed)
    print(f"corpus: {args.pages} pages, {args.commits} commits in {args.target}")


if __name__ == "__main__":
    main()
