"""Headless Chromium: the HTML export and JupyterLab render, a click shows the call, no model text runs.

Also: the search box of the export and the explorer finds a call; a search's page shows its tree;
the summary card says what a replay is and shows dollars as text; the explorer's figures fill their
tabs.

Slow (a browser start): deselected by default, run in CI with ``-m slow``. Needs Debian's
``/usr/bin/chromium`` (Playwright's own browser downloads are not used). Screenshots go to the test's
temporary directory and, when ``MOA_LAB_SCREENSHOTS`` names a directory, there too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from moa_lab import run, views
from moa_lab.testing import FakeLLM, fake_config

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EVIL = 'Say <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> & done'

#: Page coordinates of a node of a layer graph (the first plot matching ``selector``), or of a state
#: of a search tree (``meta`` "moa:states").
_NODE_XY = """
([selector, node, meta]) => {
  const gd = document.querySelector(selector);
  gd.scrollIntoView({block: "center"});
  const layout = gd._fullLayout;
  const box = gd.getBoundingClientRect();
  for (const data of gd._fullData) {
    const at = data.meta === (meta || "moa:nodes") ? data.customdata.indexOf(node) : -1;
    if (at >= 0) {
      return [box.left + layout._size.l + layout.xaxis.l2p(data.x[at]),
              box.top + layout._size.t + layout.yaxis.l2p(data.y[at])];
    }
  }
  return null;
}
"""


def _keep(shot: Path) -> None:
    where = os.environ.get("MOA_LAB_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(where) / shot.name)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def test_exported_page_renders_shows_a_clicked_call_and_runs_no_model_text(browser, tmp_path):
    with FakeLLM(delay={"beta": 0.1}) as fake:
        trace = run(EVIL, fake_config(fake.url, layers=3), cache=False, trace_path=False, progress=False)
    page_path = views.export_html(trace, tmp_path / "trace.html")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.route(
        "**/*",
        lambda route: route.abort() if route.request.url.startswith("http") else route.continue_(),
    )
    page.goto(page_path.as_uri())
    page.wait_for_selector("#moa-graph .scatterlayer .point")
    page.wait_for_selector("#moa-selected .moa-call")  # the aggregator is shown at first
    assert page.get_attribute("#moa-selected", "data-node") == trace.aggregator()
    for div in ("moa-reuse", "moa-evolution", "moa-attribution", "moa-timeline", "moa-usage"):
        assert page.locator(f"#{div} .main-svg").count() >= 1, f"{div} did not render"
    shot = tmp_path / "export-page.png"
    page.screenshot(path=shot, full_page=True)
    _keep(shot)

    x, y = page.evaluate(_NODE_XY, ["#moa-graph", "L1.1"])
    page.mouse.move(x, y)
    hover = page.locator("#moa-graph .hoverlayer")
    hover.locator("text").first.wait_for()
    shown = hover.text_content()  # SVG text, as plotly drew it
    assert "<script>window.__pwned=1</script>" in shown  # escaped markup is shown as text...
    assert "&lt;" not in shown and "&#x27;" not in shown  # ...without visible entities
    page.mouse.click(x, y)
    page.wait_for_selector('#moa-selected[data-node="L1.1"]')
    panel = page.inner_text("#moa-selected")
    assert trace["L1.1"].response in panel
    assert "beta" in panel and "Messages sent" in panel
    shot = tmp_path / "export-clicked.png"
    page.locator("#moa-graph-section").screenshot(path=tmp_path / "export-graph.png")
    page.locator("#moa-selected").screenshot(path=shot)
    _keep(shot)
    _keep(tmp_path / "export-graph.png")

    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    assert errors == [] and dialogs == []
    page.close()


def test_page_of_a_big_trace_builds_the_clicked_call_from_its_data_and_runs_no_model_text(
    browser, tmp_path
):
    with FakeLLM() as fake:
        trace = run(EVIL, fake_config(fake.url, layers=3), cache=False, trace_path=False, progress=False)
    page_path = views.export_html(trace, tmp_path / "big.html", panels=False)  # as a big trace's

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.route(
        "**/*",
        lambda route: route.abort() if route.request.url.startswith("http") else route.continue_(),
    )
    page.goto(page_path.as_uri())
    page.wait_for_selector("#moa-selected .moa-call")
    assert page.get_attribute("#moa-selected", "data-node") == trace.aggregator()
    assert "Against each reference" in page.inner_text("#moa-selected")

    x, y = page.evaluate(_NODE_XY, ["#moa-graph", "L1.1"])
    page.mouse.click(x, y)
    page.wait_for_selector('#moa-selected[data-node="L1.1"]')
    panel = page.inner_text("#moa-selected")
    assert trace["L1.1"].response in panel  # the markup a model wrote, shown as text
    assert "beta" in panel and "Messages sent (1)" in panel
    page.click('#moa-calls button[data-show="L2.0"]')  # the list of every call
    page.wait_for_selector('#moa-selected[data-node="L2.0"]')
    page.click('#moa-selected button[data-show="L1.2"]')  # a reference of the call shown
    page.wait_for_selector('#moa-selected[data-node="L1.2"]')
    shot = tmp_path / "export-big-clicked.png"
    page.locator("#moa-selected").screenshot(path=shot)
    _keep(shot)

    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    assert errors == [] and dialogs == []
    page.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url,
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": "token moa-test", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=120).close()


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on loopback serving ``tmp_path/lab``; yields its base URL."""
    root = tmp_path / "lab"
    root.mkdir()
    port = _free_port()
    here = str(Path(__file__).resolve().parents[1])  # the kernel imports this checkout's moa_lab
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--expose-app-in-browser",
        f"--port={port}", "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=moa-test",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token=moa-test", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()}")
                time.sleep(0.5)
        yield url, root
    finally:
        server.terminate()
        server.wait(20)
        log.close()


def test_explorer_in_jupyterlab_shows_a_clicked_call_and_runs_no_model_text(
    browser, jupyterlab, tmp_path
):
    url, root = jupyterlab
    notebook = new_notebook(
        cells=[
            new_code_cell(
                "import moa_lab\nfrom moa_lab import views\n"
                "from moa_lab.testing import FakeLLM, fake_config\n"
                "with FakeLLM() as fake:\n"
                f"    trace = moa_lab.run({EVIL!r}, fake_config(fake.url, layers=3),\n"
                "                        cache=False, trace_path=False, progress=False)\n"
                "trace"
            ),
            new_code_cell("explorer = views.TraceExplorer(trace)\nexplorer"),
        ]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, root / "explore.ipynb")
    # A session started here means the page finds its kernel running (no "select kernel" dialog).
    _post(
        f"{url}/api/sessions",
        {"path": "explore.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
    )

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{url}/lab/tree/explore.ipynb?token=moa-test")
    page.wait_for_function(
        "window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
        timeout=90_000,
    )
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    graph = ".jp-OutputArea-output .js-plotly-plot"
    page.wait_for_selector(f"{graph} .scatterlayer .point", timeout=90_000)
    panel = page.locator(".jp-OutputArea-output .widget-html-content .moa-call").first
    panel.wait_for(timeout=30_000)
    assert "omega" in panel.inner_text()  # it starts on the aggregator

    x, y = page.evaluate(_NODE_XY, [graph, "L1.1"])
    page.mouse.click(x, y)
    clicked = page.locator('.jp-OutputArea-output .moa-call[data-node="L1.1"]')
    clicked.wait_for(timeout=30_000)
    text = clicked.inner_text()
    assert "beta answers 'Say <script>window.__pwned=1</script>" in text
    shot = tmp_path / "jupyterlab-explorer.png"
    clicked.scroll_into_view_if_needed()
    page.screenshot(path=shot)
    _keep(shot)

    assert page.evaluate("window.__pwned") is None
    assert page.locator(".jp-OutputArea-output img").count() == 0
    assert errors == [] and dialogs == []
    page.close()


def _watched(browser, **size):
    """A page that records script errors and dialogs and reaches no network."""
    page = browser.new_page(viewport=size or {"width": 1280, "height": 900})
    page.errors, page.dialogs = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.route(
        "**/*",
        lambda route: route.abort() if route.request.url.startswith("http") else route.continue_(),
    )
    return page


def _ran_nothing(page, where: str = "") -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.locator(f"{where} img").count() == 0
    assert page.errors == [] and page.dialogs == []


@pytest.mark.parametrize("panels", [True, False], ids=["panels", "data"])
def test_the_export_search_box_finds_a_call_and_shows_model_text_as_text(browser, tmp_path, panels):
    with FakeLLM() as fake:
        trace = run(EVIL, fake_config(fake.url, layers=3), cache=False, trace_path=False, progress=False)
    page = _watched(browser)
    page.goto(views.export_html(trace, tmp_path / "page.html", panels=panels).as_uri())
    page.wait_for_selector("#moa-selected .moa-call")
    page.fill("#moa-search", "BETA answers")  # case-blind: beta's answers, and the prompts quoting them
    page.wait_for_selector("#moa-search-results .moa-result")
    found, total = views.search_calls(trace, "BETA answers")  # the page looks at the same texts
    assert total == 5 and page.inner_text("#moa-search-count") == f"{total} calls match"
    listed = page.locator("#moa-search-results button[data-show]").all_inner_texts()
    assert listed == [m.node for m in found]
    results = page.inner_text("#moa-search-results")
    assert "<script>window.__pwned=1</script>" in results  # the model's markup, as text
    assert page.locator("#moa-search-results mark").first.inner_text() == "beta answers"
    shot = tmp_path / f"export-search-{'panels' if panels else 'data'}.png"
    page.screenshot(path=shot)
    _keep(shot)
    page.click('#moa-search-results button[data-show="L2.1"]')
    page.wait_for_selector('#moa-selected[data-node="L2.1"]')
    assert page.locator("#moa-search-results").is_hidden()
    assert trace["L2.1"].response in page.inner_text("#moa-selected")
    page.fill("#moa-search", '<img src=x onerror="window.__pwned=3">')  # a query is text too
    page.wait_for_selector("#moa-search-count:has-text('no call matches')")
    page.fill("#moa-search", ".*")
    page.wait_for_selector("#moa-search-count:has-text('no call matches')")
    _ran_nothing(page)
    page.close()


_STATES = "document.querySelectorAll('#moa-tree .scatterlayer .trace .point').length"


def test_the_export_of_a_search_shows_its_tree_and_a_clicked_state_shows_its_call(browser, tmp_path):
    from moa_lab import Agent, ToTConfig, thought_tree
    from moa_lab.testing import ChatServer, game24_oracle

    def evil(body):
        reply = game24_oracle(body)
        if "Possible next steps" in body["messages"][-1]["content"]:
            reply["choices"][0]["message"]["content"] += f"\n{EVIL} (left: 1 2 3)"
        return reply

    with ChatServer(evil) as server:
        config = ToTConfig(agent=Agent(model="oracle", base_url=server.url), breadth=2)
        trace = run("1 3 4 6", config, cache=False, trace_path=False, progress=False)
    tree = thought_tree(trace)
    page = _watched(browser)
    page.goto(views.export_html(trace, tmp_path / "search.html").as_uri())
    page.wait_for_selector("#moa-tree .scatterlayer .point")
    assert page.evaluate(_STATES) >= tree.number_of_nodes()  # every state, the input and pruned
    assert "the best output is correct" in page.inner_text("#moa-tree-section")
    shot = tmp_path / "export-search-tree.png"
    page.locator("#moa-tree-section").screenshot(path=shot)
    _keep(shot)
    pruned = next(n for n, d in tree.nodes(data=True) if not d["kept"] and d["step"] == 2)
    x, y = page.evaluate(_NODE_XY, ["#moa-tree", pruned, "moa:states"])
    page.mouse.click(x, y)
    proposer = tree.nodes[pruned]["call"]
    page.wait_for_selector(f'#moa-selected[data-node="{proposer}"]')
    shown = page.inner_text("#moa-selected")
    assert "states" in shown and "<script>window.__pwned=1</script>" in shown
    page.fill("#moa-search", "left: 1 2 3")
    page.wait_for_selector("#moa-search-results .moa-result")
    assert "state" in page.inner_text("#moa-search-results")
    _ran_nothing(page)
    page.close()


def _open_notebook(browser, url: str, root: Path, name: str, cells: list[str]):
    """Write a notebook, start its kernel, open it in JupyterLab and run every cell."""
    notebook = new_notebook(cells=[new_code_cell(code) for code in cells])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, root / name)
    _post(f"{url}/api/sessions", {"path": name, "type": "notebook", "kernel": {"name": "python3"}})
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.errors, page.dialogs = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{url}/lab/tree/{name}?reset&token=moa-test")
    page.wait_for_function(
        "window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
        timeout=90_000,
    )
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    return page


#: For each figure of the explorer's tabs: [its width, the width of the tab panel holding it].
_FIGURE_WIDTHS = """
() => Array.from(document.querySelectorAll('.moa-explorer .widget-tab .js-plotly-plot'))
  .filter((plot) => plot.getBoundingClientRect().width > 0)
  .map((plot) => [plot._fullLayout.width,
                  plot.closest('.widget-tab-contents, .lm-StackedPanel').getBoundingClientRect().width])
"""


def test_jupyterlab_card_says_what_a_replay_is_and_keeps_dollars_as_text_and_figures_fill_tabs(
    browser, jupyterlab, tmp_path
):
    url, root = jupyterlab
    money = "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball."
    page = _open_notebook(
        browser,
        url,
        root,
        "replay.ipynb",
        [
            "import moa_lab\nfrom moa_lab import views, AggregatorTemplate\n"
            "from moa_lab.testing import FakeLLM, fake_config\n"
            "with FakeLLM() as fake:\n"
            f"    source = moa_lab.run({money!r}, fake_config(fake.url, layers=3),\n"
            "                         cache=False, trace_path=False, progress=False)\n"
            "    replay = moa_lab.replay(source, AggregatorTemplate('Be brief: {references}'),\n"
            "                            cache=False, trace_path=False, progress=False)\n"
            "replay",
            # Control: the same dollars in HTML without moa_lab's class are typeset as math.
            f"from IPython.display import HTML\nHTML('<div class=\"control\">' + {money!r} + '</div>')",
            "explorer = views.TraceExplorer(replay)\nexplorer",
        ],
    )
    card = page.locator(".jp-OutputArea-output .moa-summary").first
    card.wait_for(timeout=90_000)
    page.wait_for_selector(".jp-OutputArea-output .control mjx-container", timeout=60_000)
    text = card.inner_text()
    assert re.search(r"replay of \w+: aggregator template 'Be brief: \{references\}'", text)
    assert "3 reused from the source run" in text and "$1.10 in total" in text
    assert page.locator(".jp-OutputArea-output .moa mjx-container").count() == 0
    shot = tmp_path / "jupyterlab-replay-card.png"
    card.screenshot(path=shot)
    _keep(shot)

    page.wait_for_selector(".moa-explorer .js-plotly-plot .main-svg", timeout=90_000)
    tabs = page.locator(".moa-explorer .widget-tab .lm-TabBar-tab")
    for index in range(2, tabs.count()):
        tabs.nth(index).click()
        page.wait_for_function(
            f"() => ({_FIGURE_WIDTHS})().length === 1 && ({_FIGURE_WIDTHS})()"
            ".every(([plot, panel]) => plot >= 0.9 * panel - 40)",
            timeout=30_000,
        )
    shot = tmp_path / "jupyterlab-explorer-tab.png"
    page.locator(".moa-explorer .widget-tab").screenshot(path=shot)
    _keep(shot)

    page.locator(".moa-explorer .widget-text input").fill("omega answers")
    options = page.locator(".moa-explorer .widget-select select option")
    options.first.wait_for(timeout=30_000)
    assert options.count() == 1 and options.first.inner_text().startswith("L3.0")
    page.locator(".moa-explorer .widget-select select").select_option(index=0)
    page.wait_for_selector('.moa-explorer .moa-call[data-node="L3.0"]', timeout=30_000)
    assert page.evaluate("window.__pwned") is None
    assert page.errors == [] and page.dialogs == []
    page.close()
