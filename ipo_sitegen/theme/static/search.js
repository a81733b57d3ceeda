/* ipo-sitegen search page: plain JavaScript, no libraries. Only search/index.html loads it.

   The index is a set of scripts next to the page, written by ipo_sitegen/search.py:
     docs.js       the pages (url, title, parent section, labels, tier, date, summary, first words)
                   and the table that says which shard holds the terms starting with which prefix
     shard-NN.js   term -> postings (pages, fields, positions), for some term prefixes
   They are loaded with <script> tags, which work from file:// where fetch() does not, and each one
   registers itself through window.__sitegenSearch. A query loads only the shards of its terms.

   Query syntax: words (all must match), "exact phrase", OR, -excluded, prefix*, title:word,
   label:name. Case and accents do not matter.

   Index data reaches the page through textContent only, never innerHTML. The words shown to readers
   come from the data-msg-* attributes of the form in search.html, so a site can translate them. */
(function () {
  "use strict";

  var form = document.getElementById("search-page");
  if (!form) return;
  var input = form.querySelector('input[name="q"]');
  var statusLine = document.getElementById("search-status");
  var hints = document.getElementById("search-hints");
  var list = document.getElementById("search-results");
  var root = form.getAttribute("data-root") || "../";
  var version = form.getAttribute("data-version") || "";
  var PAGE = 20; // results shown at once; "Show more" adds as many again
  var SNIPPET_WORDS = 30;

  function message(name, values) {
    var text = form.getAttribute("data-msg-" + name) || "";
    Object.keys(values || {}).forEach(function (key) { text = text.split("{" + key + "}").join(values[key]); });
    return text;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- Words: the same folding as fold() and tokenize() in ipo_sitegen/search.py -------------
  var MARKS = /[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]/g;
  var LETTERS = { "ß": "ss", "ø": "o", "đ": "d", "ł": "l", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d", "ı": "i", "ς": "σ" };
  var SPECIAL = /[ßøđłæœþðıς]/g;
  var TOKEN = /[\p{L}\p{N}]+/gu; // a token: letters and digits (Unicode classes: any browser since 2020)
  var WORD = /[\p{L}\p{N}\p{M}]+/gu; // a word of unfolded text, accents included (for highlighting)

  // Scripts written without spaces between words: a run of their letters is its overlapping pairs
  // (the index also holds the run's last letter alone: a query of one letter is a prefix, see parse).
  var CJK_RUN = /([\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\u{20000}-\u{2fa1f}]+)/u;

  function fold(text) {
    return text.normalize("NFKD").toLowerCase().replace(MARKS, "").normalize("NFC")
      .replace(SPECIAL, function (c) { return LETTERS[c]; });
  }

  function pairs(words) {
    var out = [];
    words.forEach(function (word) {
      word.split(CJK_RUN).forEach(function (part, n) {
        if (n % 2 === 0) { if (part) out.push(part); return; }
        var letters = Array.from(part); // (code points: a letter past U+FFFF is two UTF-16 units)
        if (letters.length === 1) out.push(part);
        for (var k = 0; k + 1 < letters.length; k++) out.push(letters[k] + letters[k + 1]);
      });
    });
    return out;
  }

  function tokenize(text) {
    return pairs(fold(text).match(TOKEN) || []);
  }

  // ---- Loading the index ---------------------------------------------------------------------
  var index = null; // what docs.js registers: {pages, labels, shards, fields, tiers}
  var docs = []; // one object per page
  var shards = {}; // shard number -> {term: postings}
  var loading = {}; // file name -> Promise

  window.__sitegenSearch = {
    docs: function (data) {
      var pages = data.pages; // one list per property (url, title, …), in page order
      index = data;
      docs = pages.url.map(function (url, n) {
        return { n: n, url: url, title: pages.title[n], parent: pages.parent[n], labels: pages.labels[n],
                 tier: pages.tier[n], date: pages.date[n], summary: pages.summary[n], text: pages.text[n], titleLength: -1 };
      });
    },
    shard: function (number, terms) { shards[number] = terms; }
  };

  function load(name) {
    if (!loading[name]) {
      loading[name] = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = name + (version ? "?v=" + version : ""); // relative to search/
        script.onload = resolve;
        script.onerror = function () { delete loading[name]; reject(new Error("cannot load " + name)); };
        document.head.appendChild(script);
      });
    }
    return loading[name];
  }

  function shardName(number) {
    return "shard-" + (number < 10 ? "0" : "") + number + ".js";
  }

  // The shard of a term: the one whose prefix is the longest that starts the term.
  function shardOf(term) {
    var best = -1, length = -1;
    index.shards.forEach(function (row) {
      if (row[0].length > length && term.startsWith(row[0])) { best = row[1]; length = row[0].length; }
    });
    return best;
  }

  // Every shard that may hold a term starting with `prefix`.
  function shardsOfPrefix(prefix) {
    return index.shards.filter(function (row) { return row[0].startsWith(prefix) || prefix.startsWith(row[0]); })
      .map(function (row) { return row[1]; });
  }

  // ---- Postings: decoding the compact strings of search.py (see its comment on _LAST) ---------
  // Each integer: letters (base 52) then one digit or punctuation character (base 32). Per page:
  // header = (page - previous page) * 4 + 2 if a field mask follows + 1 if a count follows; the mask
  // (else BODY); the count (else 1); the first position, then each minus the one before.
  var LAST = "0123456789!#$%()*+-.:;=?@[]^{|}~";
  var MORE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  var DIGIT = new Int16Array(128).fill(-1); // character code -> value; letters are 100 + value
  for (var d = 0; d < 52; d++) { if (d < 32) DIGIT[LAST.charCodeAt(d)] = d; DIGIT[MORE.charCodeAt(d)] = 100 + d; }

  function numbers(text) {
    var out = [], value = 0;
    for (var i = 0; i < text.length; i++) {
      var digit = DIGIT[text.charCodeAt(i)];
      if (digit >= 100) { value = value * 52 + digit - 100; } else { out.push(value * 32 + digit); value = 0; }
    }
    return out;
  }

  var decoded = new Map(); // term -> Map(page number -> {mask, positions})

  function postings(term) {
    if (decoded.has(term)) return decoded.get(term);
    var shard = shards[shardOf(term)];
    var text = shard && Object.prototype.hasOwnProperty.call(shard, term) ? shard[term] : "";
    var values = numbers(text), out = new Map(), i = 0, doc = 0;
    while (i < values.length) {
      var header = values[i++];
      doc += Math.floor(header / 4);
      var mask = header & 2 ? values[i++] : index.fields.body;
      var count = header & 1 ? values[i++] : 1;
      var positions = new Array(count), position = 0;
      for (var k = 0; k < count; k++) { position += values[i++]; positions[k] = position; }
      out.set(doc, { mask: mask, positions: positions });
    }
    decoded.set(term, out);
    return out;
  }

  // ---- Queries -------------------------------------------------------------------------------
  // parse('"second factor" phone OR mobile -sms label:access') gives clauses, all of which must match
  // (a negated clause must not). A clause matches when one of its alternatives does:
  //   {kind: "word", term, prefix, title}, {kind: "phrase", terms, title} or {kind: "label", name}.
  var PART = /(-?)(?:(title|label):)?("[^"]*"?|[^\s"]+)/gi;

  function parse(query) {
    var clauses = [], joinNext = false, match;
    PART.lastIndex = 0;
    while ((match = PART.exec(query))) {
      var raw = match[0], negated = match[1] === "-", field = (match[2] || "").toLowerCase(), value = match[3];
      var quoted = value.charAt(0) === '"';
      if (!quoted && !field && !negated && (value === "OR" || value === "|")) { joinNext = clauses.length > 0; continue; }
      if (!quoted && !field && !negated && value === "AND") continue;
      var alternative = alternativeOf(field, quoted ? value.replace(/"/g, "") : value, quoted);
      if (!alternative) continue;
      var last = clauses[clauses.length - 1];
      if (joinNext && !negated && !last.negated) {
        last.alternatives.push(alternative);
        last.text += " OR " + raw;
      } else {
        clauses.push({ text: raw, negated: negated, alternatives: [alternative] });
      }
      joinNext = false;
    }
    return clauses;
  }

  function alternativeOf(field, value, quoted) {
    if (field === "label") {
      var name = tokenize(value).join(" ");
      return name ? { kind: "label", name: name } : null;
    }
    var prefix = !quoted && value.slice(-1) === "*";
    var terms = tokenize(value);
    if (!terms.length) return null;
    if (terms.length > 1) return { kind: "phrase", terms: terms, title: field === "title" };
    // A one-letter prefix would match too many words to be useful: it is taken as a word. One letter
    // of a CJK script is a word of its own, and the first of the pairs it begins (see pairs()).
    var alone = CJK_RUN.test(terms[0]) && Array.from(terms[0]).length === 1;
    return { kind: "word", term: terms[0], prefix: alone || (prefix && terms[0].length > 1), title: field === "title" };
  }

  // The shards a query needs (by number).
  function shardsFor(clauses) {
    var wanted = new Set();
    clauses.forEach(function (clause) {
      clause.alternatives.forEach(function (alt) {
        if (alt.kind === "word" && alt.prefix) shardsOfPrefix(alt.term).forEach(function (n) { wanted.add(n); });
        else if (alt.kind === "word") wanted.add(shardOf(alt.term));
        else if (alt.kind === "phrase") alt.terms.forEach(function (t) { wanted.add(shardOf(t)); });
      });
    });
    wanted.delete(-1);
    return Array.from(wanted).sort(function (a, b) { return a - b; });
  }

  // ---- Matching and ranking ------------------------------------------------------------------
  // Where a word occurs decides its weight: title > heading > label > summary > body. Ties are
  // broken by recency (the date of the last change), then by title.
  function weight(mask) {
    var f = index.fields;
    if (mask & f.title) return 16;
    if (mask & f.heading) return 8;
    if (mask & f.label) return 4;
    if (mask & f.summary) return 2;
    return 1;
  }

  function titleLength(doc) {
    if (doc.titleLength < 0) doc.titleLength = tokenize(doc.title).length;
    return doc.titleLength;
  }

  // Page number -> weight, for one alternative.
  function matchAlternative(alt) {
    var found = new Map();
    if (alt.kind === "label") {
      var wanted = new Set();
      index.labels.forEach(function (label, n) { if (tokenize(label[0]).join(" ") === alt.name) wanted.add(n); });
      docs.forEach(function (doc) {
        if (doc.labels.some(function (n) { return wanted.has(n); })) found.set(doc.n, 0);
      });
      return found;
    }
    if (alt.kind === "word") {
      var terms = [alt.term];
      if (alt.prefix) {
        terms = [];
        shardsOfPrefix(alt.term).forEach(function (n) {
          Object.keys(shards[n] || {}).forEach(function (t) { if (t.startsWith(alt.term)) terms.push(t); });
        });
      }
      var masks = new Map();
      terms.forEach(function (term) {
        postings(term).forEach(function (p, doc) { masks.set(doc, (masks.get(doc) || 0) | p.mask); });
      });
      masks.forEach(function (mask, doc) {
        if (!alt.title || mask & index.fields.title) found.set(doc, weight(mask));
      });
      return found;
    }
    // A phrase: every word at consecutive positions (the index leaves a gap between blocks).
    var lists = alt.terms.map(postings);
    var rarest = lists.reduce(function (a, b) { return a.size <= b.size ? a : b; });
    rarest.forEach(function (_, doc) {
      var entries = lists.map(function (l) { return l.get(doc); });
      if (entries.some(function (e) { return !e; })) return;
      var sets = entries.map(function (e) { return new Set(e.positions); });
      var starts = entries[0].positions.filter(function (start) {
        return sets.every(function (set, i) { return set.has(start + i); });
      });
      if (!starts.length) return;
      var inTitle = starts[0] < titleLength(docs[doc]);
      if (alt.title && !inTitle) return;
      var common = entries.reduce(function (mask, e) { return mask & e.mask; }, ~index.fields.title);
      found.set(doc, inTitle ? weight(index.fields.title) : weight(common || index.fields.body));
    });
    return found;
  }

  // Page number -> score for the whole query: clauses intersected, negated ones removed.
  function evaluate(clauses) {
    var scores = null;
    clauses.filter(function (c) { return !c.negated; }).forEach(function (clause) {
      var matched = new Map();
      clause.alternatives.forEach(function (alt) {
        matchAlternative(alt).forEach(function (w, doc) { matched.set(doc, Math.max(w, matched.get(doc) || 0)); });
      });
      if (scores === null) { scores = matched; return; }
      var both = new Map();
      scores.forEach(function (score, doc) { if (matched.has(doc)) both.set(doc, score + matched.get(doc)); });
      scores = both;
    });
    scores = scores || new Map();
    clauses.filter(function (c) { return c.negated; }).forEach(function (clause) {
      clause.alternatives.forEach(function (alt) {
        matchAlternative(alt).forEach(function (_, doc) { scores.delete(doc); });
      });
    });
    // Among equals, a page whose whole title is the query ("glossary" -> "Glossary") comes first.
    var isHit = highlighter(clauses);
    var results = Array.from(scores, function (entry) {
      var doc = docs[entry[0]];
      return { doc: doc, score: entry[1], whole: tokenize(doc.title).every(isHit) ? 1 : 0 };
    });
    results.sort(function (a, b) {
      return b.score - a.score || b.whole - a.whole || b.doc.date - a.doc.date ||
        compare(fold(a.doc.title), fold(b.doc.title)) || compare(a.doc.url, b.doc.url);
    });
    return results;
  }

  function compare(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
  }

  // ---- Showing results -----------------------------------------------------------------------
  // A function telling whether a folded token is one the reader looked for (to highlight it).
  function highlighter(clauses) {
    var exact = new Set(), prefixes = [];
    clauses.forEach(function (clause) {
      if (clause.negated) return;
      clause.alternatives.forEach(function (alt) {
        if (alt.kind === "word" && alt.prefix) prefixes.push(alt.term);
        else if (alt.kind === "word") exact.add(alt.term);
        else if (alt.kind === "phrase") alt.terms.forEach(function (t) { exact.add(t); });
      });
    });
    return function (token) {
      return exact.has(token) || prefixes.some(function (p) { return token.startsWith(p); });
    };
  }

  // The words of `text` with their offsets and whether each one is a hit.
  function words(text, isHit) {
    var out = [], match;
    WORD.lastIndex = 0;
    while ((match = WORD.exec(text))) {
      out.push({ start: match.index, end: match.index + match[0].length, hit: tokenize(match[0]).some(isHit) });
    }
    return out;
  }

  // Append `text` (or its words from `from` to `to`) to `node`, with hits in <mark>.
  function appendMarked(node, text, list, from, to) {
    var at = from < list.length ? list[from].start : 0;
    var end = to > 0 ? list[to - 1].end : text.length;
    for (var i = from; i < to; i++) {
      if (!list[i].hit) continue;
      node.appendChild(document.createTextNode(text.slice(at, list[i].start)));
      node.appendChild(element("mark", "", text.slice(list[i].start, list[i].end)));
      at = list[i].end;
    }
    node.appendChild(document.createTextNode(text.slice(at, end)));
  }

  // A few words of the page around its best match, from the first words the index keeps (or the
  // summary when the match is further down the page).
  function snippet(doc, isHit) {
    var p = element("p", "search-snippet");
    var text = doc.text, list = words(text, isHit);
    if (!list.some(function (w) { return w.hit; }) && doc.summary) { text = doc.summary; list = words(text, isHit); }
    var best = 0, bestCount = -1;
    list.forEach(function (w, i) {
      if (!w.hit) return;
      var seen = new Set();
      for (var k = i; k < Math.min(list.length, i + SNIPPET_WORDS); k++) {
        if (list[k].hit) seen.add(fold(text.slice(list[k].start, list[k].end)));
      }
      if (seen.size > bestCount) { best = i; bestCount = seen.size; }
    });
    var from = Math.max(0, best - 6), to = Math.min(list.length, from + SNIPPET_WORDS);
    if (from > 0) p.appendChild(document.createTextNode("… "));
    appendMarked(p, text, list, from, to);
    if (to < list.length && !/…\s*$/.test(text)) p.appendChild(document.createTextNode(" …"));
    return p;
  }

  function href(url) {
    var target = root + url;
    if (location.protocol === "file:" && (target.slice(-1) === "/" || url === "")) target += "index.html";
    return target;
  }

  function sectionPath(doc) {
    var names = [];
    for (var n = doc.parent; n >= 0 && names.length < 20; n = docs[n].parent) names.unshift(docs[n].title);
    return names.join(" › ");
  }

  function resultItem(doc, isHit) {
    var item = element("li", "search-result");
    var heading = element("h2", "search-title");
    var link = element("a");
    link.href = href(doc.url);
    appendMarked(link, doc.title, words(doc.title, isHit), 0, words(doc.title, isHit).length);
    heading.appendChild(link);
    if (doc.tier > 0 && index.tiers[doc.tier]) {
      heading.appendChild(document.createTextNode(" "));
      heading.appendChild(element("span", "tier", "🔒 " + index.tiers[doc.tier]));
    }
    item.appendChild(heading);
    var path = sectionPath(doc);
    if (path) item.appendChild(element("p", "search-path", path));
    item.appendChild(snippet(doc, isHit));
    if (doc.labels.length) {
      var labels = element("ul", "labels");
      doc.labels.forEach(function (n) {
        var entry = element("li"), a = element("a", "", index.labels[n][0]);
        a.href = href(index.labels[n][1]);
        entry.appendChild(a);
        labels.appendChild(entry);
      });
      item.appendChild(labels);
    }
    return item;
  }

  var more = element("button", "search-more", message("more"));
  more.type = "button";
  more.hidden = true;
  list.parentNode.insertBefore(more, list.nextSibling);
  var showing = { results: [], isHit: null, count: 0 };

  function showMore() {
    var fragment = document.createDocumentFragment();
    showing.results.slice(showing.count, showing.count + PAGE).forEach(function (r) {
      fragment.appendChild(resultItem(r.doc, showing.isHit));
    });
    list.appendChild(fragment);
    showing.count = Math.min(showing.results.length, showing.count + PAGE);
    more.hidden = showing.count >= showing.results.length;
  }
  more.addEventListener("click", showMore);

  // Nothing found: say so, and offer the same query without each filter, exclusion or word.
  function showHints(query, clauses) {
    hints.textContent = "";
    if (clauses.length < 2) {
      hints.appendChild(element("p", "", message("fewer")));
      return;
    }
    hints.appendChild(element("p", "", message("hint")));
    var options = element("ul");
    var filters = function (c) { return c.negated || c.alternatives.some(function (a) { return a.kind !== "word" || a.title || a.prefix; }); };
    clauses.filter(filters).concat(clauses.filter(function (c) { return !filters(c); })).forEach(function (clause) {
      var rest = clauses.filter(function (c) { return c !== clause; }).map(function (c) { return c.text; }).join(" ");
      var entry = element("li"), a = element("a", "", message("remove") + " " + clause.text);
      a.href = "?q=" + encodeURIComponent(rest);
      a.addEventListener("click", function (event) { event.preventDefault(); input.value = rest; search(rest); });
      entry.appendChild(a);
      options.appendChild(entry);
    });
    hints.appendChild(options);
  }

  function show(query, clauses, results) {
    list.textContent = "";
    hints.textContent = "";
    list.setAttribute("data-query", query); // which query the list answers (for tests and tools)
    showing = { results: results, isHit: highlighter(clauses), count: 0 };
    if (!clauses.some(function (c) { return !c.negated; })) {
      statusLine.textContent = message("negative-only");
      more.hidden = true;
      return;
    }
    if (!results.length) {
      statusLine.textContent = message("none", { query: query.trim() });
      showHints(query, clauses);
      more.hidden = true;
      return;
    }
    statusLine.textContent = results.length === 1 ? message("count-one") : message("count", { count: results.length });
    showMore();
  }

  // ---- Wiring --------------------------------------------------------------------------------
  var latest = 0; // only the answer to the last query typed is shown

  function remember(query) {
    try {
      history.replaceState(null, "", query.trim() ? "?q=" + encodeURIComponent(query) : location.pathname);
    } catch (error) { /* some browsers refuse this on file://; the page still works */ }
  }

  function search(query) {
    var ticket = ++latest;
    remember(query);
    var clauses = parse(query);
    if (!clauses.length) {
      list.textContent = ""; hints.textContent = ""; statusLine.textContent = ""; more.hidden = true;
      list.setAttribute("data-query", query);
      return Promise.resolve();
    }
    return load("docs.js").then(function () {
      var files = shardsFor(clauses).filter(function (n) { return !shards[n]; });
      if (files.length) statusLine.textContent = message("loading");
      return Promise.all(files.map(function (n) { return load(shardName(n)); }));
    }).then(function () {
      if (ticket === latest) show(query, clauses, evaluate(clauses));
    }).catch(function () {
      if (ticket === latest) statusLine.textContent = message("error");
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    search(input.value);
  });
  input.addEventListener("input", function () { search(input.value); });

  load("docs.js").catch(function () { statusLine.textContent = message("error"); });
  var initial = new URLSearchParams(location.search).get("q") || "";
  if (initial) {
    input.value = initial;
    search(initial);
  } else {
    input.focus();
  }
})();
