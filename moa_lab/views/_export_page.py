"""The stylesheet and the script of the exported page (``_export``).

The script shows the call clicked in the layer graph, in the search tree or in the page (a copy of
its rendered panel, or, when the page carries the calls as data, a panel built from it), and runs
the search box over every call's text.

Invariant: the script builds DOM nodes with ``textContent`` and moves or copies nodes the page
rendered escaped; it never parses HTML (no ``innerHTML``, ``insertAdjacentHTML``,
``document.write`` nor ``eval``), and it matches a query as literal text, so nothing a model wrote
or a reader typed can run.
"""

from __future__ import annotations

from moa_lab.views._style import FONT

__all__ = ["PAGE_CSS", "SCRIPT"]

PAGE_CSS = """
body { margin: 0; background: #f3f4f6; font-family: $FONT; color: #1f2937; }
main { max-width: 1240px; margin: 0 auto; padding: 18px 22px 60px; }
h1 { font-size: 22px; margin: 6px 0 10px; }
h2 { font-size: 17px; margin: 26px 0 8px; }
nav { position: sticky; top: 0; z-index: 5; background: #111827; padding: 6px 22px;
  display: flex; align-items: center; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: #e5e7eb; text-decoration: none; font-size: 13px; }
nav a:hover { color: #fff; }
nav .moa-find { margin-left: auto; display: flex; align-items: center; gap: 8px; position: relative; }
nav input[type=search] { width: 320px; max-width: 50vw; font: 13px $FONT; padding: 4px 8px;
  border-radius: 6px; border: 1px solid #374151; background: #1f2937; color: #f9fafb; }
nav .moa-found { color: #d1d5db; font-size: 12px; }
#moa-search-results { position: absolute; top: calc(100% + 8px); right: 0; width: min(720px, 92vw);
  max-height: 65vh; overflow: auto; background: #fff; color: #1f2937; border-radius: 8px;
  box-shadow: 0 8px 24px rgba(0,0,0,.25); padding: 6px 10px; }
#moa-search-results .moa-result { padding: 5px 0; border-bottom: 1px solid #f1f5f9; font-size: 12px; }
#moa-search-results .moa-result:last-child { border-bottom: 0; }
#moa-search-results .moa-snippet { white-space: pre-wrap; word-break: break-word; color: #374151; }
section.moa-figure { background: #fff; border-radius: 10px; padding: 6px; margin: 12px 0;
  box-shadow: 0 1px 2px rgba(0,0,0,.06); scroll-margin-top: 48px; }
section.moa-keys { background: #fff; border-radius: 10px; padding: 8px 14px; margin: 12px 0;
  scroll-margin-top: 48px; }
#moa-selected { background: #fff; border-radius: 10px; padding: 4px 14px 10px; margin: 8px 0 12px;
  box-shadow: 0 1px 2px rgba(0,0,0,.06); border-left: 4px solid #111827; scroll-margin-top: 48px; }
#moa-calls { scroll-margin-top: 48px; }
details.moa-call-details { background: #fff; border-radius: 8px; margin: 6px 0; padding: 4px 12px; }
details.moa-call-details > summary { font-size: 13px; padding: 4px 0; }
.moa-hint { color: #6b7280; font-size: 12px; margin: 4px 2px; }
.moa-index { background: #fff; border-radius: 8px; margin: 6px 0; padding: 6px 12px; font-size: 12px; }
button.moa-link { font: inherit; color: #1d4ed8; background: none; border: 0; padding: 0 3px;
  cursor: pointer; }
button.moa-link:hover { text-decoration: underline; }
""".replace("$FONT", FONT)

#: Shows the call clicked in the layer graph, the search tree or the page: a copy of its rendered
#: panel, or, when the page carries the calls as data, a panel built from it with DOM nodes and
#: textContent; and lists the calls whose text contains what is typed in the search box.
SCRIPT = r"""
window.addEventListener("load", function () {
  var graph = document.getElementById("moa-graph");
  var tree = document.getElementById("moa-tree");
  var panel = document.getElementById("moa-selected");
  var store = document.getElementById("moa-call-data");
  var calls = store ? new Map(JSON.parse(store.textContent)) : null;
  var proposers = document.getElementById("moa-tree-calls");
  var proposedBy = proposers ? JSON.parse(proposers.textContent) : {};
  var LIMIT = 100;
  function el(tag, kind, text) {
    var node = document.createElement(tag);
    if (kind) { node.className = kind; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function dot(color) {
    var node = el("span", "moa-dot");
    node.style.background = color;
    return node;
  }
  function link(node) {
    var button = el("button", "moa-link", node);
    button.type = "button";
    button.dataset.show = node;
    return button;
  }
  function percent(value) { return Math.round(value * 100) + "%"; }
  function render(id, call) {
    var box = el("div", "moa-call");
    box.dataset.node = id;
    var title = el("h3");
    title.append(dot(call.color), el("b", null, id), " ",
                 el("span", "moa-muted", call.role + " · "), call.model);
    call.badges.forEach(function (badge) {
      title.append(el("span", "moa-badge " + badge[0], badge[1]));
    });
    var table = el("table", "moa-kv");
    call.rows.forEach(function (row) {
      var line = el("tr");
      line.append(el("th", null, row[0]), el("td", null, row[1]));
      table.append(line);
    });
    box.append(title, table);
    if (call.error !== null) {
      box.append(el("h4", null, "Error"), el("pre", "moa-error", call.error));
    }
    if (call.response !== null) {
      box.append(el("h4", null, "Response"), el("pre", null, call.response));
    }
    if (call.reasoning) {
      var thought = el("details");
      var counted = call.reasoning_tokens === null ? "" : " (" + call.reasoning_tokens + " tokens)";
      thought.append(el("summary", null, "Reasoning" + counted + ": kept apart from the answer"),
                     el("pre", null, call.reasoning));
      box.append(thought);
    }
    if (call.states.length) {
      var states = el("details");
      states.append(el("summary", null, "States of the search (" + call.states.length + ")"));
      call.states.forEach(function (state) { states.append(el("pre", null, state[1])); });
      box.append(states);
    }
    call.warnings.forEach(function (warning) { box.append(el("div", "moa-badge moa-warn", warning)); });
    if (call.references.length) {
      var which = call.references.length < call.read
        ? "The " + call.references.length + " of its " + call.read.toLocaleString("en") +
          " references it carried most from"
        : "Each reference";
      box.append(el("h4", null, "Against each reference"), el("div", "moa-muted", which +
        ", with what this call reused from it; click one to show it. Word diffs against each " +
        "reference are left out of a page of " + calls.size.toLocaleString("en") +
        " calls: see this call in moa_lab.views.TraceExplorer."));
      var list = el("ol");
      call.references.forEach(function (ref) {
        var item = el("li");
        item.value = ref[0];
        var source = calls.get(ref[1]);
        item.append(dot(source.color), link(ref[1]), " ", source.model, " ", el("span", "moa-muted",
          "— carried " + percent(ref[2]) + " · copied " + percent(ref[3]) + " · BLEU " +
          ref[4].toFixed(2) + " · TF-IDF " + ref[5].toFixed(2)));
        list.append(item);
      });
      box.append(list);
    }
    var sent = el("details");
    sent.append(el("summary", null, "Messages sent (" + call.messages.length + ")"));
    call.messages.forEach(function (message) {
      var who = el("div");
      who.append(el("b", null, message[0]));
      sent.append(who, el("pre", null, message[1]));
    });
    box.append(sent);
    var wrap = el("div", "moa mathjax_ignore tex2jax_ignore");
    wrap.append(box);
    return wrap;
  }
  function show(node) {
    var view = null;
    if (calls) {
      if (calls.has(node)) { view = render(node, calls.get(node)); }
    } else {
      document.querySelectorAll("#moa-calls [data-call]").forEach(function (found) {
        if (found.dataset.call === node) { view = found.querySelector(".moa").cloneNode(true); }
      });
    }
    if (!view) { return false; }
    panel.replaceChildren(view);
    panel.dataset.node = node;
    return true;
  }
  graph.on("plotly_click", function (event) {
    var point = event.points && event.points[0];
    if (point && typeof point.customdata === "string") { show(point.customdata); }
  });
  if (tree && tree.on) {
    tree.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      var node = point && typeof point.customdata === "string" ? proposedBy[point.customdata] : null;
      if (node && show(node)) { panel.scrollIntoView({block: "start"}); }
    });
  }
  // The search box: the texts of every call, from the page's search data or the call data.
  var box = document.getElementById("moa-search");
  var count = document.getElementById("moa-search-count");
  var results = document.getElementById("moa-search-results");
  var indexStore = document.getElementById("moa-search-data");
  var index = null;
  function textsOf(call) {
    var texts = [];
    [["response", call.response], ["reasoning", call.reasoning], ["error", call.error]]
      .forEach(function (text) { if (text[1]) { texts.push(text); } });
    call.states.forEach(function (state) { texts.push(state); });
    call.messages.forEach(function (message, at) {
      texts.push(["message " + (at + 1) + " (" + message[0] + ")", message[1]]);
    });
    return texts;
  }
  function searchIndex() {
    if (index === null) {
      index = indexStore ? JSON.parse(indexStore.textContent) : Array.from(calls, function (entry) {
        return [entry[0], entry[1].role, entry[1].model, textsOf(entry[1])];
      });
    }
    return index;
  }
  function flat(text) { return text.replace(/\s+/g, " "); }
  function result(entry, where, text, at, length) {
    var row = el("div", "moa-result");
    var about = entry[1] + " · " + entry[2] + " · " + where;
    row.append(link(entry[0]), " ", el("span", "moa-muted", about));
    var snippet = el("div", "moa-snippet");
    var from = Math.max(0, at - 60);
    var to = Math.min(text.length, at + length + 80);
    snippet.append((from > 0 ? "…" : "") + flat(text.slice(from, at)),
                   el("mark", null, text.slice(at, at + length)),
                   flat(text.slice(at + length, to)) + (to < text.length ? "…" : ""));
    row.append(snippet);
    return row;
  }
  function find() {
    var needle = box.value.trim();
    results.replaceChildren();
    if (!needle) { results.hidden = true; count.textContent = ""; return; }
    var pattern = new RegExp(needle.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i");
    var shown = 0;
    var total = 0;
    searchIndex().forEach(function (entry) {
      var texts = entry[3];
      for (var i = 0; i < texts.length; i++) {
        var hit = pattern.exec(texts[i][1]);
        if (hit === null) { continue; }
        total += 1;
        if (shown < LIMIT) {
          results.append(result(entry, texts[i][0], texts[i][1], hit.index, hit[0].length));
          shown += 1;
        }
        break;
      }
    });
    count.textContent = total === 0 ? "no call matches"
      : total + (total === 1 ? " call matches" : " calls match") +
        (total > shown ? " (the first " + shown + " listed)" : "");
    results.hidden = total === 0;
  }
  var pending = null;
  box.addEventListener("input", function () {
    clearTimeout(pending);
    pending = setTimeout(find, 150);
  });
  box.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { results.hidden = true; }
    if (event.key === "Enter") { clearTimeout(pending); find(); }
  });
  box.addEventListener("focus", function () {
    if (results.childElementCount) { results.hidden = false; }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-show]") : null;
    if (button && show(button.dataset.show)) {
      results.hidden = true;
      panel.scrollIntoView({block: "start"});
    } else if (!results.contains(event.target) && event.target !== box) {
      results.hidden = true;
    }
  });
  if (panel.dataset.initial) { show(panel.dataset.initial); }
});
"""
