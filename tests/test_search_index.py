"""The search index builder: tokens, positions for phrases, shards, determinism, and the gate.

The index is what a reader's browser downloads, so these tests read it the way search.js does:
docs.js for the pages and the shard table, then the shard that the table names for a term.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from pathlib import Path

from helpers import build_ok, page, read_tree
from hypothesis import given
from hypothesis import strategies as st

from ipo_sitegen.search import (
    _GAP,
    BODY,
    HEADING,
    LABEL,
    SUMMARY,
    TITLE,
    Entry,
    Posting,
    body_blocks,
    build_index,
    decode_numbers,
    decode_postings,
    encode_numbers,
    encode_postings,
    excerpt,
    fields,
    fold,
    shard_name,
    shard_of,
    tokenize,
    update_index,
    word_stream,
)


def _payload(script: str) -> list:
    """The arguments of `window.__sitegenSearch.NAME(...)` in a search script, as JSON values."""
    match = re.fullmatch(r"window\.__sitegenSearch\.(docs|shard)\((.*)\);\n", script, re.S)
    assert match, script[:80]
    return json.loads(f"[{match.group(2)}]")


class Index:
    """A built index read back: pages, shard table, and the postings of a term."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.meta = _payload(files["docs.js"])[0]
        self.pages = self.meta["pages"]  # property -> one value per page

    def urls(self) -> list[str]:
        return self.pages["url"]

    def page(self, url: str) -> dict:
        n = self.urls().index(url)
        return {key: values[n] for key, values in self.pages.items()}

    def raw(self, term: str) -> str | None:
        number = shard_of(term, [tuple(row) for row in self.meta["shards"]])
        if number is None:
            return None
        _, terms = _payload(self.files[shard_name(number)])
        return terms.get(term)

    def postings(self, term: str) -> dict[str, tuple[int, list[int]]]:
        """url -> (field mask, positions) for one term."""
        raw = self.raw(term)
        if raw is None:
            return {}
        return {self.urls()[doc]: (p.mask, p.positions) for doc, p in decode_postings(raw).items()}

    def all_terms(self) -> dict[str, str]:
        terms: dict[str, str] = {}
        for name, text in self.files.items():
            if name.startswith("shard-"):
                terms.update(_payload(text)[1])
        return terms


def _bundle_index(bundle_dir: Path) -> Index:
    return Index({p.name: p.read_text(encoding="utf-8") for p in sorted((bundle_dir / "search").glob("*.js"))})


def _entry(url: str, title: str, html: str = "", **kw) -> Entry:
    return Entry(source=url + ".md", url=url, title=title, html=html, **kw)


# ---- tokens ----------------------------------------------------------------------------------------
def test_tokens_fold_case_and_accents_like_a_reader_types():
    assert tokenize("Ana Marković") == ["ana", "markovic"]
    assert tokenize("MARKOVIĆ") == tokenize("markovic")
    assert tokenize("Straße, Łódź, Ærøskøbing, Đakovo") == ["strasse", "lodz", "aeroskobing", "dakovo"]
    assert tokenize("ﬁling") == ["filing"]  # a ligature from a PDF copy
    assert tokenize("10 ㎒ band") == ["10", "mhz", "band"]  # (a compatibility letter folds to capitals: lower case after)
    assert tokenize("Ελληνικά ΟΔΟΣ") == ["ελληνικα", "οδοσ"]  # final sigma folds like any sigma
    assert tokenize("Дізнайтеся") == ["дізнаитеся"]  # й loses its breve like é loses its accent


def test_tokens_of_scripts_without_spaces_are_overlapping_pairs():
    """Chinese and Japanese are written without spaces: a sentence was one token, so '特許' (patent)
    found nothing. Runs are indexed as their pairs; voiced kana keep their mark (で is not て)."""
    assert tokenize("東京特許許可局です。") == ["東京", "京特", "特許", "許許", "許可", "可局", "局で", "です", "す"]
    assert tokenize("特許") == ["特許", "許"] and tokenize("国") == ["国"]  # (the last letter alone: a word of one letter)
    assert tokenize("특허청은 KIPO의 기관") == ["특허", "허청", "청은", "은", "kipo", "의", "기관", "관"]
    assert tokenize("ガイド") == ["ガイ", "イド", "ド"]  # (katakana ガ keeps its voicing mark)
    assert "\u3099" not in "".join(tokenize("データベース"))


def test_tokens_split_codes_paths_and_underscores_into_words():
    assert tokenize("ERR-INST-0102 in /etc/ipo_connect/office.toml, release 2026.2.1") == [
        "err", "inst", "0102", "in", "etc", "ipo", "connect", "office", "toml", "release", "2026", "2", "1"]
    assert tokenize("“quoted” — (and) !?") == ["quoted", "and"]
    assert tokenize("") == [] and fold("ASCII only") == "ascii only"


# ---- text of a body --------------------------------------------------------------------------------
BODY_HTML = """
<p>Intro text with a footnote<sup id="fnref:1"><a class="footnote-ref" href="#fn:1">1</a></sup> here.</p>
<h2 id="the-approval-chain">The approval chain<a class="headerlink" href="#the-approval-chain" title="Link to this section">#</a></h2>
<p>See <a class="locked" href="https://x.example/r/">the vault<span class="lock" aria-hidden="true">🔒</span><span class="visually-hidden"> (registered access)</span></a> now.</p>
<script>var hidden = "never";</script>
<table><tr><th>Field</th><th>Example</th></tr><tr><td>Name</td><td>Ana</td></tr></table>
<pre><code>ipoctl status</code></pre>
"""


def test_body_text_keeps_words_and_drops_decoration():
    blocks = body_blocks(BODY_HTML)
    assert [(b.heading, b.text) for b in blocks] == [
        (False, "Intro text with a footnote here."), (True, "The approval chain"), (False, "See the vault now."),
        (False, "Field"), (False, "Example"), (False, "Name"), (False, "Ana"), (False, "ipoctl status")]


def test_body_text_survives_raw_html_written_by_authors():
    html = ("<!-- a <p>comment</p> --><div title='a > b' class=\"\">Tom &amp; Jerry &lt;3</div>"
            "<P>Line<br />break<img src=x.png alt='picture'></P><span class=lock>🔒</span><p>End</p></p>")
    assert [b.text for b in body_blocks(html)] == ["Tom & Jerry <3", "Line", "break", "End"]


def test_decoration_is_read_from_attribute_names_not_from_urls():
    html = ('<p><a href="https://example.org/?aria-hidden=true&amp;class=lock">the flibbertigibbet guide</a></p>'
            '<p><a class="headerlink" href="#x">¶</a><span aria-hidden="TRUE">hidden</span><span class="x lock">🔒</span>Shown</p>')
    assert [b.text for b in body_blocks(html)] == ["the flibbertigibbet guide", "Shown"]


def test_excerpt_is_running_text_cut_at_a_word():
    blocks = body_blocks(BODY_HTML)
    assert excerpt(blocks, 1000) == ("Intro text with a footnote here. The approval chain · See the vault now. "
                                     "Field · Example · Name · Ana · ipoctl status")
    short = excerpt(blocks, 40)
    assert short.endswith(" …") and len(short) <= 42 and "Intro text with a footnote here." in short


# ---- positions -------------------------------------------------------------------------------------
def test_a_page_is_one_stream_of_words_with_a_gap_between_fields_and_blocks():
    entry = _entry("a/", "Key pair", summary="How to make one", labels=("security",))
    texts = fields(entry, body_blocks("<h2>Key steps</h2><p>Make the key pair.</p>"))
    assert [where for where, _ in texts] == [TITLE, SUMMARY, LABEL, HEADING, BODY]
    # title 0-1, summary 3-6, label 8, heading 10-11, body 13-16
    assert word_stream([text for _, text in texts]) == ["key", "pair", _GAP, "how", "to", "make", "one", _GAP, "security",
                                                        _GAP, "key", "steps", _GAP, "make", "the", "key", "pair"]


@given(st.lists(st.text(alphabet="aZ9_ é\u0301ßΣςͺ\x00—.-&;\n\t", max_size=12), max_size=8))
def test_the_stream_is_the_words_of_each_text_with_one_gap_between_texts_that_have_words(texts):
    expected: list[str] = []
    for text in texts:
        words = tokenize(text)
        if words and expected:
            expected.append(_GAP)
        expected += words
    assert word_stream(texts) == expected
    assert all(json.dumps(word, ensure_ascii=False) == f'"{word}"' for word in expected if word != _GAP)  # see build_index


def test_a_term_knows_every_field_it_occurs_in():
    entry = _entry("a/", "Key pair", "<p>body only, then</p><h2>body heading</h2><p>heading body</p>", summary="key")
    index = Index(build_index([entry]).files)
    assert index.postings("key")["a/"] == (TITLE | SUMMARY, [0, 3])
    assert index.postings("body")["a/"] == (BODY | HEADING, [5, 9, 13])
    assert index.postings("heading")["a/"] == (HEADING | BODY, [10, 12])
    assert index.postings("only")["a/"] == (BODY, [6])


def test_phrase_positions_are_consecutive_only_inside_one_block():
    entries = [_entry("a/", "Requesting an account", "<h2>The approval chain</h2><p>Approval is quick.</p>"),
               _entry("b/", "Other", "<p>The chain of approval.</p><p>Chain</p><p>approval</p>")]
    index = Index(build_index(entries).files)
    approval, chain = index.postings("approval"), index.postings("chain")

    def phrase_at(url: str) -> list[int]:
        return [p for p in approval[url][1] if p + 1 in chain[url][1]]

    assert phrase_at("a/") == [5]  # "approval chain" in the heading
    assert approval["a/"][0] == HEADING | BODY and chain["a/"][0] == HEADING
    assert phrase_at("b/") == []  # the words are in another order, or in two blocks
    assert index.postings("approval")["b/"][1] == [5, 9]  # "Other" 0, gap, "the chain of approval" 2-5, gap, "chain" 7, gap


def test_postings_code_is_compact_for_the_common_case():
    # One position in the body only: the header (page delta * 4) and the position, nothing else.
    assert encode_postings({0: Posting(BODY, [5])}) == encode_numbers([0, 5])
    assert encode_postings({3: Posting(BODY, [7]), 10: Posting(TITLE | BODY, [0, 9])}) == encode_numbers(
        [3 * 4, 7, 7 * 4 + 2 + 1, TITLE | BODY, 2, 0, 9])
    assert len(encode_numbers([1663])) == 2 and len(encode_numbers([1664])) == 3


def test_postings_round_trip_and_never_spell_a_word():
    entries = [_entry(f"p{i}/", f"Page {i}", "<p>" + " ".join(["alpha"] * (i + 1) + ["omega"]) + "</p>") for i in range(40)]
    index = Index(build_index(entries).files)
    alpha = index.postings("alpha")
    assert len(alpha) == 40 and alpha["p3/"] == (BODY, [3, 4, 5, 6])
    assert index.postings("omega")["p39/"] == (BODY, [43])
    assert index.postings("page")["p0/"] == (TITLE, [0])


_WORDS = st.lists(st.sampled_from(["key", "Key", "pair", "café", "CAFE", "2026", "ß", "x_y", "—", "&amp;", "a.b"]), max_size=6)
_PAGE = st.tuples(_WORDS, _WORDS, st.lists(st.sampled_from(["key", "Pair", "ops"]), max_size=2, unique=True),
                  st.lists(st.tuples(st.booleans(), _WORDS), max_size=5))


@given(st.lists(_PAGE, min_size=1, max_size=6))
def test_postings_hold_every_field_and_position_of_every_term(pages):
    # The postings against the plainest way to number a page's words: field by field, one gap between
    # fields that have words.
    entries = []
    for i, (title, summary, labels, blocks) in enumerate(pages):
        html = "".join(f"<h2>{' '.join(words)}</h2>" if heading else f"<p>{' '.join(words)}</p>" for heading, words in blocks)
        entries.append(_entry(f"p{i}/", " ".join(title), html, summary=" ".join(summary), labels=tuple(labels)))
    expected: dict[str, dict[str, tuple[int, list[int]]]] = {}  # term -> url -> (mask, positions)
    for entry in entries:
        position = 0
        for where, text in fields(entry, body_blocks(entry.html)):
            words = tokenize(text)
            for offset, word in enumerate(words):
                mask, positions = expected.setdefault(word, {}).get(entry.url, (0, []))
                expected[word][entry.url] = mask | where, [*positions, position + offset]
            position += len(words) + 1 if words else 0
    index = Index(build_index(entries).files)
    assert set(index.all_terms()) == set(expected)
    for term, found in expected.items():
        assert index.postings(term) == found, term


@given(st.lists(st.integers(min_value=0, max_value=2**25 - 1), max_size=50))
def test_number_code_round_trips_and_has_no_letter_run_of_five(numbers):
    text = encode_numbers(numbers)
    assert decode_numbers(text) == numbers
    # The leak audit reads every string of a bundle: a run of 5+ letters could look like a word.
    assert not re.search(r"[A-Za-z]{5}", text)
    assert '"' not in text and "\\" not in text and "'" not in text and "/" not in text
    assert json.dumps(text) == f'"{text}"'  # build_index counts shard sizes on this


# ---- shards ----------------------------------------------------------------------------------------
def _corpus(pages: int = 150, seed: int = 3) -> list[Entry]:
    rng = random.Random(seed)
    syllables = ["ka", "to", "ri", "men", "sol", "va", "lin", "dor", "pe", "qua", "ser", "nu", "tal", "é", "ø"]
    vocabulary = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)})
    out = []
    for i in range(pages):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(50, 200)))
        out.append(_entry(f"s{i % 7}/p{i}/", f"Page {rng.choice(vocabulary)}", f"<p>{text}</p>",
                          labels=(rng.choice(["alpha", "beta"]),)))
    return out


def test_shards_are_split_by_prefix_and_a_term_is_found_from_its_prefix_alone():
    built = build_index(_corpus(), shard_bytes=6_000)
    index = Index(built.files)
    shards = sorted(n for n in built.files if n.startswith("shard-"))
    assert len(shards) > 10
    table = [tuple(row) for row in index.meta["shards"]]
    every = {}
    for name in shards:
        number, terms = _payload(built.files[name])
        assert name == shard_name(number)
        for term in terms:
            assert shard_of(term, table) == number, term  # what search.js does to find a term
        every.update(terms)
        # A shard exceeds the target only when it holds a single prefix group that cannot be split.
        groups = [row for row in table if row[1] == number]
        assert len(built.files[name].encode()) <= 6_000 + 200 or len(groups) == 1
    assert len(every) == built.terms
    # A prefix query loads the shards whose prefix starts with it or starts it: they hold every match.
    for prefix in ["ka", "s", "to", "m", "qua"]:
        wanted = {n for p, n in table if p.startswith(prefix) or prefix.startswith(p)}
        found = set()
        for n in wanted:
            found |= {t for t in _payload(built.files[shard_name(n)])[1] if t.startswith(prefix)}
        assert found == {t for t in every if t.startswith(prefix)}, prefix
    assert shard_of("zzzz-not-a-term", table) is None or index.raw("zzzz-not-a-term") is None


def test_small_sites_have_one_shard_and_everything_is_sorted():
    built = build_index([_entry("b/", "Beta"), _entry("a/", "Alpha", "<p>zeta eta</p>")])
    assert sorted(built.files) == ["docs.js", "shard-00.js"]
    index = Index(built.files)
    assert index.urls() == ["a/", "b/"] and index.meta["shards"] == [["", 0]]
    assert list(index.all_terms()) == sorted(index.all_terms())


def test_the_same_pages_give_the_same_bytes_in_any_order():
    corpus = _corpus(60)
    first = build_index(corpus, shard_bytes=5_000)
    shuffled = corpus[:]
    random.Random(9).shuffle(shuffled)
    second = build_index(shuffled, shard_bytes=5_000)
    assert first.files == second.files and first.version == second.version
    assert build_index(corpus[1:], shard_bytes=5_000).version != first.version


def _edited(entry: Entry, rng: random.Random, vocabulary: list[str]) -> Entry:
    """The entry after a random edit of its body, title, summary or labels."""
    words = re.findall(r"\S+", re.sub("<[^>]+>", " ", entry.html))
    kind = rng.choice(["add", "drop", "swap", "empty", "title", "summary", "labels", "heading"])
    if kind == "add":
        words.insert(rng.randrange(len(words) + 1), rng.choice(vocabulary + ["brandnewterm", "zz9"]))
    elif kind == "drop" and words:
        gone = rng.choice(words)  # every occurrence: the page leaves the term's postings
        words = [w for w in words if w != gone]
    elif kind == "swap" and words:
        words[rng.randrange(len(words))] = rng.choice(vocabulary)
    elif kind == "empty":
        words = []
    html = f"<p>{' '.join(words)}</p>" if words else ""
    if kind == "heading":
        html = f"<h2>{rng.choice(vocabulary)}</h2>" + html
    title = f"{entry.title} {rng.choice(vocabulary)}" if kind == "title" else entry.title
    summary = rng.choice(vocabulary) if kind == "summary" else entry.summary
    labels = (rng.choice(["alpha", "gamma", "delta"]),) if kind == "labels" else entry.labels
    return Entry(entry.source, entry.url, title, html, summary, labels, entry.tier, entry.parent, entry.date)


def test_an_index_updated_after_edits_has_the_bytes_of_one_built_anew():
    rng = random.Random(5)
    corpus = _corpus(120)
    vocabulary = sorted({w for e in corpus for w in re.findall(r"\w+", e.html)})
    index = build_index(corpus, shard_bytes=4_000)
    for _ in range(40):
        changed = {rng.randrange(len(corpus)) for _ in range(rng.choice([1, 1, 2, 5]))}
        for n in changed:
            corpus[n] = _edited(corpus[n], rng, vocabulary)
        index = update_index(index, corpus, {corpus[n].source for n in changed}, shard_bytes=4_000)
        fresh = build_index(corpus, shard_bytes=4_000)
        assert index.files == fresh.files and index.version == fresh.version
        assert index.postings == fresh.postings
    # The first and the last page (no page before, none after), and a page whose text does not change.
    ordered = sorted(range(len(corpus)), key=lambda n: corpus[n].url)
    for n in (ordered[0], ordered[-1], ordered[0]):
        corpus[n] = _edited(corpus[n], rng, vocabulary)
        index = update_index(index, corpus, {corpus[n].source}, shard_bytes=4_000)
        assert index.files == build_index(corpus, shard_bytes=4_000).files


def test_postings_made_block_by_block_are_those_made_at_once(monkeypatch):
    # A large bundle's codes are joined per term a block of pages at a time (memory): blocks of a few
    # pages, which split the postings of most terms, give the bytes of one block.
    import ipo_sitegen.search as search

    corpus = _corpus(120)
    whole = build_index(corpus, shard_bytes=4_000)
    monkeypatch.setattr(search, "_BLOCK_PAIRS", 50)
    search.forget()
    blocked = build_index(corpus, shard_bytes=4_000)
    assert blocked.postings == whole.postings and blocked.files == whole.files
    assert len({len(terms.numbers) for terms, _ in blocked.analysed}) > 1  # (pages of several sizes: uneven blocks)


def test_an_index_of_other_pages_is_built_anew():
    corpus = _corpus(40)
    index = build_index(corpus, shard_bytes=4_000)
    moved = [_entry("zz/moved/", e.title, e.html, labels=e.labels) if n == 3 else e for n, e in enumerate(corpus)]
    for pages in (corpus[1:], corpus + [_entry("new/", "New page", "<p>fresh words</p>")], moved):
        assert update_index(index, pages, set(), shard_bytes=4_000).files == build_index(pages, shard_bytes=4_000).files


def test_a_saved_index_is_loaded_only_with_the_files_it_wrote(tmp_path):
    import hashlib

    from ipo_sitegen.search import load_index, save_index

    corpus = _corpus(30)
    index = build_index(corpus, shard_bytes=4_000)
    folder = tmp_path / "bundle"
    (folder / "search").mkdir(parents=True)

    def publish(files: dict[str, str]) -> dict[str, str]:
        for name, text in files.items():
            (folder / "search" / name).write_text(text, encoding="utf-8")
        return {f"search/{name}": hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()}

    listed = publish(index.files)
    save_index(index, tmp_path / "saved.pickle")
    loaded = load_index(tmp_path / "saved.pickle", folder, listed)
    assert loaded is not None and loaded.postings == index.postings and loaded.pages == index.pages
    corpus[0] = _entry(corpus[0].url, corpus[0].title, "<p>entirely new words</p>", labels=corpus[0].labels)
    assert update_index(loaded, corpus, {corpus[0].source}, shard_bytes=4_000).files == build_index(corpus, shard_bytes=4_000).files
    # The bundle holds another index now (a build that saved this one failed, or came after it).
    other = build_index(corpus[1:], shard_bytes=4_000)
    assert load_index(tmp_path / "saved.pickle", folder, publish(other.files)) is None
    # Or a file is not the one its manifest lists.
    listed = publish(index.files)
    (folder / "search" / "docs.js").write_text("tampered", encoding="utf-8")
    assert load_index(tmp_path / "saved.pickle", folder, listed) is None


def test_docs_hold_what_a_result_shows():
    entries = [_entry("a/", "Section", "<p>Intro</p>"),
               Entry("a/b.md", "a/b/", "Child", "<p>Body words</p>", "A summary", ("zeta", "Alpha"), 1, "a/_index.md", 1700000000)]
    entries[0].source = "a/_index.md"
    index = Index(build_index(entries, tiers=["public", "registered"]).files)
    assert index.meta["labels"] == [["Alpha", "labels/alpha/"], ["zeta", "labels/zeta/"]]
    assert index.page("a/b/") == {"url": "a/b/", "title": "Child", "parent": 0, "labels": [1, 0], "tier": 1,
                                  "date": 1700000000, "summary": "A summary", "text": "Body words"}
    assert index.page("a/")["parent"] == -1
    assert index.meta["tiers"] == ["public", "registered"]


# ---- in a build: the gate, every bundle, reproducible bytes ----------------------------------------
GATED_SITE = {
    "content/_index.md": page("Home", "public", "Welcome."),
    "content/guide/_index.md": page("Guides", "public", "All guides."),
    "content/guide/setup.md": page("Setting up", "public", """
Open the console and run the setup wizard.

::: audience registered
## Vault access
The zanzibarquokka credential opens the vault.
:::

Then restart.
""", labels="[howto]"),
    "content/guide/secret.md": page("Hidden runbook", "registered", "The xylophonic procedure, step by step."),
}


def test_gated_words_are_only_in_the_bundles_that_show_them(site_factory):
    site = site_factory(GATED_SITE)
    build_ok(site)
    public = _bundle_index(site / "build" / "public")
    restricted = _bundle_index(site / "build" / "restricted")

    assert "guide/secret/" not in public.urls() and "guide/secret/" in restricted.urls()
    for word in ["zanzibarquokka", "xylophonic", "vault", "runbook"]:
        assert public.postings(word) == {}, word
        assert word not in public.all_terms()
    search_text = "\n".join(public.files.values())
    for fragment in ["zanzibarquokka", "Vault access", "xylophonic", "Hidden runbook", "guide/secret"]:
        assert fragment not in search_text

    # title 0-1, label 3, first paragraph 5-12, heading 14-15, then "The zanzibarquokka…" from 17
    assert restricted.postings("zanzibarquokka") == {"guide/setup/": (BODY, [18])}
    assert restricted.postings("vault")["guide/setup/"][0] == HEADING | BODY
    assert list(restricted.postings("xylophonic")) == ["guide/secret/"]
    assert public.postings("restart") and public.postings("wizard")["guide/setup/"][0] == BODY


def test_each_bundle_is_indexed_as_it_shows_its_pages(site_factory):
    # The index reads most bodies as rendered, before links are finalised (their words are the same);
    # a body that references an attachment is read finalised: a locked image shows its alt text.
    from helpers import MEDIUM_SITE

    from ipo_sitegen.build import BundleOutput, Options, plan
    from ipo_sitegen.search import entries_for, forget
    from ipo_sitegen.write import BundleWriter

    site = site_factory({**MEDIUM_SITE, "content/guides/gallery.md": page(
        "Gallery", "public", "The racks: ![Rackmount photograph](../staff/rack.png). See the [portal](../members/portal.md).")})
    build_ok(site)
    result = plan(site, Options())
    for bundle in result.bundles:
        output = BundleOutput(result, bundle, BundleWriter(site / "scratch" / bundle.name))
        entries = entries_for(output.pages, {p.source: output.body(p) for p in output.pages})
        forget()
        expected = build_index(entries, result.config.tiers[: bundle.rank + 1])
        assert _bundle_index(site / "build" / bundle.name).files == expected.files, bundle.name
    public = _bundle_index(site / "build" / "public")
    assert "guides/gallery/" in public.postings("rackmount")  # (the alt text of the locked image)
    assert "guides/gallery/" in public.postings("portal")


def test_every_bundle_gets_a_search_page_and_a_search_box(site_factory):
    site = site_factory(GATED_SITE)
    build_ok(site)
    for bundle in ["public", "restricted", "internal"]:
        folder = site / "build" / bundle
        search_page = (folder / "search" / "index.html").read_text(encoding="utf-8")
        script = re.search(r'<script src="(\.\./assets/search\.[0-9a-f]{10}\.js)" defer>', search_page)
        assert script and (folder / "search" / script.group(1)).resolve().is_file()
        assert 'data-root="../"' in search_page and 'id="search-input"' in search_page
        setup = (folder / "guide" / "setup" / "index.html").read_text(encoding="utf-8")
        assert '<form class="search" action="../../search/" role="search">' in setup
        assert '<form class="search" action="./search/"' in (folder / "index.html").read_text(encoding="utf-8")
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        assert {"search/index.html", "search/docs.js", "search/shard-00.js"} <= set(manifest["files"])
        sitemap = (folder / "sitemap.xml").read_text(encoding="utf-8")
        assert "search/" not in sitemap
    guides = _bundle_index(site / "build" / "public")
    parent = guides.page("guide/setup/")["parent"]
    assert guides.pages["title"][parent] == "Guides"  # its section, for the result's section path


def test_search_files_are_byte_identical_across_builds(site_factory, tmp_path):
    site = site_factory(GATED_SITE)
    build_ok(site)
    first = {k: v for k, v in read_tree(site / "build").items() if "search" in k}
    build_ok(site)
    second = {k: v for k, v in read_tree(site / "build").items() if "search" in k}
    assert first == second and len(first) >= 3 * 4


def test_pages_carry_the_date_of_their_last_change_for_recency(site_factory):
    site = site_factory({"content/_index.md": page("Home", "public", "Welcome."),
                         "content/old.md": page("Old", "public", "Common words.")})

    def git(*args: str, when: str = "2026-01-05T10:00:00+00:00") -> None:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(site), "GIT_AUTHOR_NAME": "Ann",
               "GIT_AUTHOR_EMAIL": "ann@example.org", "GIT_COMMITTER_NAME": "Ann", "GIT_COMMITTER_EMAIL": "ann@example.org",
               "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        subprocess.run(["git", *args], cwd=site, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "First pages")
    (site / "content" / "new.md").write_text(page("New", "public", "Common words."), encoding="utf-8")
    git("add", "-A")
    git("commit", "-q", "-m", "A newer page", when="2026-02-01T08:30:00+00:00")
    build_ok(site)
    index = _bundle_index(site / "build" / "public")
    assert index.page("old/")["date"] == 1767607200  # 2026-01-05T10:00:00Z
    assert index.page("new/")["date"] == 1769934600  # 2026-02-01T08:30:00Z
