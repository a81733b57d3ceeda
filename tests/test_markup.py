"""The Markdown stage: our quicker inline stage and code formatter must give exactly the output of
stock Python-Markdown and Pygments."""

from __future__ import annotations

import random
from pathlib import Path

import markdown
import pytest
from markdown.treeprocessors import InlineProcessor

from ipo_sitegen.markup import EXTENSION_CONFIGS, EXTENSIONS, LinkIndex, Renderer, _LinkExtension

INDEX = LinkIndex(frozenset({"a.md", "guide/b.md", "_index.md"}), frozenset({"guide/pic.png"}))

# One text per inline pattern, and the places where patterns meet or nest.
SNIPPETS = [
    "plain words only, nothing to match",
    "`code` and ``double `tick` code`` and \\`not code\\` and \\\\`code after escaped backslash`",
    "escapes: \\* \\_ \\[ \\< \\& \\\\ and a trailing backslash\\",
    "[a page](a.md), [b](guide/b.md#part \"title\"), [ref][r], [r], [missing](nope.md)\n\n[r]: a.md",
    "![pic](guide/pic.png) ![ref pic][p] ![p] ! [not an image]\n\n[p]: guide/pic.png",
    "<https://example.org/x?y=1&z=2> <someone@example.org> <not a link> < spaced >",
    "line with two trailing spaces  \nnext line\\\nand a backslash break",
    "<span class=\"x\">raw *em* inside</span> <!-- a comment --> <?pi ?> <![CDATA[ x ]]> a < b > c",
    "&amp; &#38; &#x26; &nosemicolon & alone &copy;",
    "*em* **strong** ***both*** _em_ __strong__ ___both___ * spaced * snake_case_word 2*3*4",
    "**[link in strong](a.md)** [*em in link*](a.md) `*not em in code*` **`code in strong`**",
    "text[^1] and [^missing]\n\n[^1]: The *note* with [a link](a.md).",
    "{: .class } word {: #id } [link](a.md){: .button }",
    "mixed: *a [b `c` d](a.md) e* & <b>f</b>  \n**g \\* h**",
    "| a | *b* |\n|---|---|\n| `c` | [d](a.md) |",
    "!!! note \"A *title*\"\n    Body with **strong** and `code`.",
    "Term\n:   Definition with _em_ and <i>html</i>.",
    '<div markdown="1">\n*em in html block* and [link](a.md)\n</div>',
    "```python\ndef f(x: int) -> str:\n    return f'{x!r}'  # comment\n```\n\n```bash\nssh-keygen -t ed25519 -f ~/.ssh/key\n```",
    "```yaml\naudience: restricted\nlabels: [a, b]\n```\n\n```\nno language <b>\n```\n\n    indented code *x*",
    # block processors with a quick test: quotes, hash headings, rules, definitions, references, footnotes
    "> quoted *em*\n> > nested\n\nnot > a quote\n\n   > indented quote\n\n    > code, not a quote",
    "# one\n## two ##\ntext # not a heading\n\n####### seven\n\nC# and #hashtag",
    "---\n\n* * *\n\n___\n\ntext\n- - -\nafter\n\nwell-known co_operation 2*3",
    "Term\n: one\n:   two\n\nnot: a definition\n\nApple\n:\n\n: orphan",
    "[ref]: a.md \"T\"\n[other]:\n  guide/b.md\nSee [ref] and [other].\n\n[not]:",
    "Note[^n] and [^m].\n\n[^n]: first\n[^m]: second\n    continued\n\n[^ x]: odd",
    "!!! warning\n    First.\n\n    Second, still inside.\n\n- item\n\n    !!! note \"in a list\"\n        body\n\n        more\n\noutside !!! not one",
    # the toc marker (searched for only in texts that have it) and block-level tags
    "[TOC]\n\n# One\n\nwords [TOC] inline\n\n> [TOC]\n\n## Two\n\n<DIV>block</DIV>\n\n<hr/>\n\n<Span>inline</Span>",
]


def _renderers() -> tuple[Renderer, Renderer]:
    """Ours, and one with Python-Markdown's own inline stage and Pygments' own formatter."""
    quick, stock = Renderer(INDEX), Renderer(INDEX)
    configs = {name: {k: v for k, v in config.items() if k != "pygments_formatter"} for name, config in EXTENSION_CONFIGS.items()}
    stock.md = markdown.Markdown(extensions=[*EXTENSIONS, _LinkExtension(stock.state)], extension_configs=configs, output_format="html")
    stock.md.treeprocessors.register(InlineProcessor(stock.md), "inline", 20)
    return quick, stock


def _same(quick: Renderer, stock: Renderer, text: str) -> None:
    a, b = quick.render("", text), stock.render("", text)
    assert (a.html, a.toc, a.pages, a.files, a.problems) == (b.html, b.toc, b.pages, b.files, b.problems), text


def test_the_quick_stages_are_in_use():
    quick, stock = _renderers()
    assert type(quick.md.treeprocessors["inline"]) is not InlineProcessor
    assert type(stock.md.treeprocessors["inline"]) is InlineProcessor
    quick_blocks = [p for p in quick.md.parser.blockprocessors if "test" in vars(p) or "run" in vars(p)]
    assert len(quick_blocks) == 7 and not any("test" in vars(p) or "run" in vars(p) for p in stock.md.parser.blockprocessors)
    assert "is_block_level" in vars(quick.md) and "is_block_level" not in vars(stock.md)
    # the private methods the quick stage overrides and calls: were they renamed, it would be bypassed
    assert hasattr(InlineProcessor, "_InlineProcessor__handleInline") and hasattr(InlineProcessor, "_InlineProcessor__applyPattern")
    assert '<span class="k">def</span>' in quick.render("", next(s for s in SNIPPETS if s.startswith("```python"))).html  # highlighted, with classes


@pytest.mark.parametrize("text", SNIPPETS)
def test_quick_inline_stage_matches_stock_on_every_pattern(text):
    quick, stock = _renderers()
    html = quick.render("", text).html
    assert html  # the snippet rendered to something
    _same(quick, stock, text)


def test_quick_stages_match_stock_on_random_markdown():
    """Random texts dense in the characters inline patterns and block processors look for, in every order."""
    pieces = ["*", "**", "_", "__", "`", "``", "\\", "[", "]", "(", ")", "!", "<", ">", "&", ";", "#",
              "^", ":", "@", "  \n", "\n", "\n\n", " ", "word", "a.md", "http://x.org", "amp", "{: .c}",
              "<b>", "</b>", "<!--", "-->", "[^1]", "[^1]: note\n", "- ", "1. ", "    ",
              "> ", "\n# ", "## ", "!!! note\n", "\n    ", "\n---\n", "\n***\n", "\n: ", "[r]: a.md\n", "]:", "- - -", "\n==", "[TOC]", "\n\n[TOC]\n\n", "<P>", "<hr/>"]
    rng = random.Random(20261126)
    quick, stock = _renderers()
    for _ in range(1500):
        _same(quick, stock, "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))))


def test_quick_inline_stage_matches_stock_on_the_demo_site():
    quick, stock = _renderers()
    for path in sorted((Path(__file__).resolve().parent.parent / "content").rglob("*.md")):
        _same(quick, stock, path.read_text(encoding="utf-8").split("---\n", 2)[-1])
