"""The web console, the OpenAPI document and the /docs page, served by the api service.

Against a real embedded stack (``stack``) and, for the API key rules, one started with a key.
The first tests need no browser: what is served, that the served spec is the file and agrees
with the app's /v1 routes, that only the console's own routes skip the key. The browser tests
drive Debian's chromium through Playwright's sync API (Playwright's own browser download is not
used) and are skipped, with the reason, where either is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urljoin, urlparse

import pytest
import yaml

from waterflow import ApiError, Client
from waterflow.embedded import Stack
from waterflow_api.app import make_app

from test_agents import poll

SPEC_FILE = Path(__file__).resolve().parents[2] / "services" / "api" / "openapi.yaml"
KEY = "console-key-4711"
CONSOLE_ROUTES = {("get", "/"), ("get", "/openapi.json"), ("get", "/openapi.yaml"), ("get", "/docs")}
CONSOLE_STATIC_PREFIXES = {"/console", "/docs/static"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _app_routes() -> tuple[set[tuple[str, str]], set[str]]:
    """(method, path) of every route ``make_app`` registers, and the prefixes of static routes."""
    app = make_app(SimpleNamespace(js=None, nc=None), None)  # type: ignore[arg-type]
    routes, static = set(), set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if "prefix" in info:
            static.add(info["prefix"])
            continue
        if route.method.lower() in ("head", "*"):
            continue
        path = info.get("path") or info.get("formatter")
        routes.add((route.method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return routes, static


class _Assets(HTMLParser):
    """Every URL a page loads (script src, link href, img src) and links to (a href)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "script":
            if attr.get("src"):
                self.loads.append(attr["src"] or "")
            else:
                self.inline_scripts += 1
        elif tag == "link" and attr.get("href"):
            self.loads.append(attr["href"] or "")
        elif tag == "img" and attr.get("src"):
            self.loads.append(attr["src"] or "")
        elif tag == "a" and attr.get("href"):
            self.links.append(attr["href"] or "")


def _assets(html: str) -> _Assets:
    parser = _Assets()
    parser.feed(html)
    return parser


def _local(url: str) -> bool:
    """A URL of this origin (a path) or inline data; never another host, never a CDN."""
    if url.startswith("data:"):
        return True
    parsed = urlparse(url)
    return not parsed.scheme and not parsed.netloc and not url.startswith("//")


# ------------------------------------------------------------------ without a browser


def test_openapi_json_is_the_spec_file_and_describes_exactly_the_apps_v1_routes(stack: Stack) -> None:
    status, headers, body = _get(stack.api_url + "/openapi.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    served = json.loads(body)
    assert served == yaml.safe_load(SPEC_FILE.read_text())  # one source of truth: the file
    assert served["openapi"].startswith("3.1")

    spec_routes = {(m, p) for p, item in served["paths"].items() for m in item if m in HTTP_METHODS}
    routes, static = _app_routes()
    # The spec describes the /v1 API; the console's own routes are not part of it and are
    # excluded from the agreement here, by name, so no undocumented route can hide among them.
    api_routes = {(m, p) for m, p in routes if p.startswith("/v1/")}
    assert routes - api_routes == CONSOLE_ROUTES
    assert static == CONSOLE_STATIC_PREFIXES
    assert api_routes - spec_routes == set(), "routes missing from the spec"
    assert spec_routes - api_routes == set(), "routes in the spec the app does not have"


def test_openapi_yaml_is_served_as_the_file_is(stack: Stack) -> None:
    status, headers, body = _get(stack.api_url + "/openapi.yaml")
    assert status == 200 and "yaml" in headers["Content-Type"]
    assert body.decode() == SPEC_FILE.read_text()


def test_docs_is_swagger_ui_from_local_assets_pointed_at_openapi_json(stack: Stack) -> None:
    status, headers, body = _get(stack.api_url + "/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = _assets(body.decode())
    assert page.loads and page.inline_scripts == 0
    assert all(_local(url) for url in page.loads + page.links), page.loads + page.links
    scripts = {}
    for url in page.loads:
        status, _, content = _get(urljoin(stack.api_url + "/docs", url))
        assert status == 200, url
        scripts[url] = content
    assert "/docs/static/swagger-ui-bundle.js" in scripts and b"SwaggerUIBundle" in scripts["/docs/static/swagger-ui-bundle.js"]
    assert b'fetch("/openapi.json"' in scripts["/console/docs.js"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_the_console_is_served_at_the_root_with_its_assets(stack: Stack) -> None:
    status, headers, body = _get(stack.api_url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    page = _assets(body.decode())
    assert page.inline_scripts == 0
    assert set(page.loads) >= {"/console/console.js", "/console/console.css"}
    assert all(_local(url) for url in page.loads + page.links)
    for url, kind in (("/console/console.js", "javascript"), ("/console/console.css", "text/css")):
        status, headers, content = _get(stack.api_url + url)
        assert status == 200 and kind in headers["Content-Type"] and content, url
    script = _get(stack.api_url + "/console/console.js")[2].decode()
    # User text goes in as text nodes: no way to turn a string into markup is used anywhere.
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function", script)
    assert _get(stack.api_url + "/console/no-such-file.js")[0] == 404


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An embedded Waterflow whose API needs the key ``KEY``."""
    s = Stack(data_dir=tmp_path_factory.mktemp("keyed"), agent_groups=("local",), env={"WATERFLOW_API_KEY": KEY})
    s.start()
    yield s
    s.stop()


def test_only_the_console_docs_and_spec_skip_the_api_key(keyed_stack: Stack) -> None:
    url = keyed_stack.api_url
    for path in ("/", "/console/console.js", "/console/console.css", "/openapi.json", "/openapi.yaml", "/docs",
                 "/docs/static/swagger-ui-bundle.js"):
        assert _get(url + path)[0] == 200, path
    for path in ("/v1/workflows", "/v1/agents", "/v1/secrets", "/nope",
                 "/console/../v1/workflows", "/console/%2e%2e/v1/workflows", "/docs/static/../../v1/secrets"):
        status, _, body = _get(url + path)
        assert status in (401, 404), (path, status)
        assert b'"runs"' not in body and b'"secrets"' not in body, path
    assert _get(url + "/v1/workflows", {"Authorization": f"Bearer {KEY}"})[0] == 200


# ------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]'); browser tests of the console skipped")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium); browser tests of the console skipped")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


class Page:
    """A browser tab on one stack; records every request and every uncaught script error."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.tab = self.context.new_page()
        self.tab.set_default_timeout(15000)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.errors: list[str] = []
        self.tab.on("request", lambda r: self.requests.append((r.url, r.headers)))
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))
        self.tab.on("dialog", lambda d: d.accept())

    def goto(self, path: str) -> Any:
        self.tab.goto(self.base_url + path)
        return self.tab

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"script errors in the page: {self.errors}"
        foreign = [u for u, _ in self.requests if not (u.startswith(self.base_url + "/") or u.startswith("data:"))]
        assert not foreign, f"the page loaded from elsewhere: {foreign}"


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Page]:
    tab = Page(browser, stack.api_url)
    yield tab
    tab.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


FLEET = """
name: fleet-console
jobs:
  build:
    runs-on: local
    steps:
      - name: Build <b>it</b>
        run: |
          echo 'rendered as text: <img src=x onerror="window.pwned=1">'
          echo "warning on stderr" >&2
  check:
    runs-on: local
    needs: build
    strategy:
      fail-fast: false
      matrix:
        server: [web-1, web-2, web-3, web-4, web-5, web-6]
    steps:
      - id: c
        run: |
          if [ "${{ matrix.server }}" = web-5 ]; then echo "disk full" >&2; exit 3; fi
          echo "free=42%" >> "$WATERFLOW_OUTPUT"
  report:
    runs-on: local
    needs: check
    steps:
      - run: echo never
"""


def test_the_runs_page_shows_new_runs_live_and_filters_them(page: Page, client: Client) -> None:
    expect = _expect()
    tab = page.goto("/")  # the runs list is the default page
    expect(tab.locator("#runs")).to_be_visible()
    name = f"live-list-{int(time.time() * 1000)}"
    run_id = client.submit(f"name: {name}\njobs:\n  j:\n    runs-on: local\n    steps:\n      - run: echo hi\n")["id"]
    row = tab.locator("tr.run-row", has_text=run_id)
    expect(row).to_be_visible()  # arrived by polling: no reload
    client.wait(run_id, timeout=60)
    expect(row.locator(".status")).to_have_text("succeeded")
    expect(row.locator(".status")).to_have_class(re.compile(r"\bstatus-succeeded\b"))
    expect(row.locator("td.workflow")).to_have_text(name)

    tab.select_option("#status-filter", "failed")
    expect(row).to_have_count(0)
    tab.select_option("#status-filter", "succeeded")
    expect(row).to_have_count(1)
    tab.fill("#name-filter", "no-such-workflow-name")
    expect(tab.locator("tr.run-row")).to_have_count(0)
    tab.fill("#name-filter", name)
    expect(tab.locator("tr.run-row")).to_have_count(1)
    expect(row.locator("td.started-by")).to_have_text("api")
    tab.select_option("#trigger-filter", "webhook")
    expect(row).to_have_count(0)
    tab.select_option("#trigger-filter", "api")
    expect(row).to_have_count(1)
    row.locator("td.workflow a").click()
    expect(tab.locator("#run-title")).to_have_text(name)
    assert tab.url.endswith("#/runs/" + run_id)


def test_a_run_page_shows_the_graph_the_fan_out_results_logs_and_history_and_retries(page: Page, client: Client) -> None:
    expect = _expect()
    run_id = client.submit(FLEET)["id"]
    assert client.wait(run_id, timeout=90)["status"] == "failed"
    tab = page.goto(f"/#/runs/{run_id}")  # a deep link, as pasted

    expect(tab.locator(".run-header .status")).to_have_text("failed")
    expect(tab.locator(".run-header")).not_to_contain_text("null")  # absent values are not printed
    columns = tab.locator(".graph-column")
    expect(columns).to_have_count(3)  # build, then check, then report: one level each
    for index, (job, status) in enumerate((("build", "succeeded"), ("check", "failed"), ("report", "skipped"))):
        box = columns.nth(index).locator(".job-box")
        expect(box).to_have_attribute("data-job", job)
        expect(box).to_have_class(re.compile(rf"\bstatus-border-{status}\b"))
    expect(columns.nth(1)).to_contain_text("5 of 6 ok")
    expect(tab.locator(".graph-edges path")).to_have_count(2)  # build -> check -> report

    summary = tab.locator(".results-summary")
    expect(summary).to_contain_text("5 of 6 ok")
    expect(summary).to_contain_text("web-5 failed: disk full")  # the reason, at a glance
    failed = tab.locator("tr.result-row.result-failed")
    expect(failed).to_have_count(1)
    expect(failed.locator("td").nth(0)).to_have_text("web-5")
    expect(failed.locator("td").nth(3)).to_have_text("3")
    expect(tab.locator("tr.result-row.result-succeeded").first).to_contain_text("free=42%")

    # Logs: stdout and stderr told apart; user text stays text.
    expect(tab.locator(".log-line.stream-stderr", has_text="disk full")).to_have_count(1)
    expect(tab.locator(".log-line.stream-stderr", has_text="warning on stderr")).to_have_count(1)
    html_line = tab.locator(".log-line.stream-stdout", has_text='<img src=x onerror="window.pwned=1">')
    expect(html_line).to_have_count(1)
    expect(tab.locator(".job-card", has_text="Build <b>it</b>").first).to_be_visible()
    assert tab.locator("main img, main b").count() == 0
    assert tab.evaluate("() => window.pwned") is None  # nothing the run printed ran

    tab.fill("#log-search", "disk")
    expect(tab.locator(".log-line:visible")).to_have_count(1)
    expect(tab.locator(".log-line:visible mark")).to_have_text("disk")
    tab.fill("#log-search", "")
    tab.select_option("#stream-filter", "stderr")
    expect(tab.locator(".log-line:visible")).to_have_count(2)
    tab.select_option("#stream-filter", "all")

    expect(tab.locator("#workflow-source")).to_contain_text("name: fleet-console")  # the YAML that ran

    timeline = tab.locator("#timeline")
    expect(timeline.locator("li").first).to_contain_text("run.created")
    expect(timeline.locator("li").last).to_contain_text("run.completed")
    assert timeline.locator("li").count() == len(client.events(run_id))

    tab.click("#retry")
    expect(tab.locator("#action-result")).to_contain_text("retrying")
    poll(lambda: client.get(run_id)["attempt"] == 2, 30, "attempt 2")
    assert client.wait(run_id, timeout=90, attempt=2)["status"] == "failed"  # web-5 still fails
    expect(tab.locator(".fact", has_text="Attempt").locator("dd")).to_have_text("2")
    # The page followed the new attempt live: it shows every "disk full" the API has (both attempts).
    stored = [line for line in client.logs(run_id) if line["text"] == "disk full"]
    assert len({line["attempt"] for line in stored}) >= 2
    expect(tab.locator(".log-line.stream-stderr", has_text="disk full")).to_have_count(len(stored))


def test_a_running_run_streams_its_logs_live_shows_why_a_job_waits_and_can_be_cancelled(page: Page, client: Client) -> None:
    expect = _expect()
    run_id = client.submit(
        "name: long-console\njobs:\n  j:\n    runs-on: local\n    steps:\n"
        "      - name: slow\n        run: |\n          echo tick-1\n          sleep 60\n          echo never\n"
        "  stuck:\n    runs-on: nowhere-console\n    steps:\n      - run: echo no agent\n"
    )["id"]
    tab = page.goto(f"/#/runs/{run_id}")
    expect(tab.locator(".log-line", has_text="tick-1")).to_have_count(1)
    assert client.get(run_id)["status"] == "running"  # the line came while the step runs
    expect(tab.locator(".run-header .status")).to_have_text("running")
    waiting = poll(lambda: client.get(run_id)["jobs"]["stuck"]["waiting"], 30, "the job to wait")
    stuck = tab.locator(".job-box[data-job=stuck]")
    expect(stuck.locator(".waiting")).to_have_text(f"waiting: {waiting}")
    expect(stuck).to_have_class(re.compile(r"\bstatus-border-waiting\b"))
    expect(tab.locator("#retry")).to_be_disabled()
    tab.click("#cancel")  # confirms with a dialog, accepted by the fixture
    assert client.wait(run_id, timeout=60)["status"] == "cancelled"
    expect(tab.locator(".run-header .status")).to_have_text("cancelled")
    expect(tab.locator("#cancel")).to_be_disabled()
    expect(tab.locator(".log-line", has_text="never")).to_have_count(0)


def test_agents_nodes_triggers_and_secret_names(page: Page, client: Client) -> None:
    expect = _expect()
    tab = page.goto("/#/agents")
    agent = tab.locator("#agents tr.agent-row", has_text="local-agent")
    expect(agent.locator(".status")).to_have_text("healthy")
    expect(agent).to_contain_text("0.1.0")
    expect(tab.locator("#groups tr", has_text="local")).to_have_count(1)
    expect(tab.locator("main")).not_to_contain_text("null")  # no error: nothing printed for it

    tab.click("#nav a[data-page=nodes]")
    expect(tab.locator("#nodes tr.node-row", has_text="shell@v1")).to_have_count(1)

    name = f"fire-console-{int(time.time() * 1000)}"
    trigger = client.add_trigger(f"name: {name}\njobs:\n  j:\n    runs-on: local\n    steps:\n      - run: echo fired\n", "t.yml")
    tab.click("#nav a[data-page=triggers]")
    row = tab.locator("#triggers tr.trigger-row", has_text=trigger["id"])
    expect(row).to_contain_text(name)
    assert not [r for r in client.list() if r["workflow"] == name]
    row.locator("button.fire").click()
    expect(row).to_contain_text("fired")
    fired = poll(lambda: [r for r in client.list() if r["workflow"] == name], 30, "the fired run")
    expect(row.locator(f'a[href="#/runs/{fired[0]["id"]}"]')).to_be_visible()  # the answer names the run
    assert client.wait(fired[0]["id"], timeout=60)["status"] == "succeeded"
    fire_requests = [headers for url, headers in page.requests if url.endswith(f"/v1/triggers/{trigger['id']}/fire")]
    assert len(fire_requests) == 1

    client.set_secret("CONSOLE_SECRET_NAME", "value-never-shown-4711")
    tab.click("#nav a[data-page=secrets]")
    expect(tab.locator("#secrets li", has_text="CONSOLE_SECRET_NAME")).to_have_count(1)
    assert "value-never-shown-4711" not in tab.content()


def test_submit_validates_with_inline_diagnostics_then_runs_and_shows_the_run(page: Page, client: Client) -> None:
    expect = _expect()
    tab = page.goto("/#/submit")
    invalid = "name: broken\njobs:\n  a:\n    runs-on: local\n    needs: nope\n    steps:\n      - run: echo ${{ foo.bar }}\n"
    tab.fill("#workflow", invalid)
    tab.click("#validate")
    expected = client.validate(invalid, "console.yml")["errors"]
    assert len(expected) >= 2
    diagnostics = tab.locator("#diagnostics li.diagnostic")
    expect(diagnostics).to_have_count(len(expected))
    for shown, diagnostic in zip(diagnostics.all(), expected):
        expect(shown).to_contain_text(f"{diagnostic['line']}:{diagnostic['col']} {diagnostic['message']}")
    inline = tab.locator("#listing .inline-diagnostic")
    expect(inline).to_have_count(len(expected))
    # Each message sits under its line, its caret under its column.
    first = expected[0]
    caret_line = inline.nth(0).locator(".line-text").text_content() or ""
    assert caret_line.index("^") == first["col"] - 1 and first["message"] in caret_line

    workflow = "name: submitted-here\ninputs:\n  who: {type: string, required: true}\njobs:\n  j:\n    runs-on: local\n" \
               "    steps:\n      - run: echo \"hello ${{ inputs.who }}\"\n"
    tab.set_input_files("#upload", files=[{"name": "uploaded.yml", "mimeType": "text/yaml", "buffer": workflow.encode()}])
    expect(tab.locator("#filename")).to_have_value("uploaded.yml")  # opened from a file
    expect(tab.locator("#workflow")).to_have_value(workflow)
    tab.click("#validate")
    expect(tab.locator("#diagnostics .notice-ok")).to_contain_text("Valid")
    tab.fill("#inputs", "who=console")
    tab.click("#run")
    tab.wait_for_url(re.compile(r"#/runs/r[0-9a-z]+$"))
    run_id = tab.url.rsplit("/", 1)[1]
    assert client.wait(run_id, timeout=60)["inputs"] == {"who": "console"}
    expect(tab.locator(".run-header .status")).to_have_text("succeeded")
    expect(tab.locator(".log-line", has_text="hello console")).to_have_count(1)


def test_the_key_is_asked_once_kept_for_the_tab_and_sent_only_as_a_header(browser: Any, keyed_stack: Stack) -> None:
    expect = _expect()
    client = Client(keyed_stack.api_url, api_key=KEY)
    run_id = client.submit("name: keyed\njobs:\n  j:\n    runs-on: local\n    steps:\n      - run: echo keyed-line\n")["id"]
    client.wait(run_id, timeout=60)
    page = Page(browser, keyed_stack.api_url)
    try:
        tab = page.goto("/")
        expect(tab.locator("#key-form")).to_be_visible()
        expect(tab.locator("#runs")).to_have_count(0)
        tab.fill("#api-key", "wrong-key")
        tab.click("#key-form button[type=submit]")
        expect(tab.locator("#key-form")).to_contain_text("refused")
        tab.fill("#api-key", KEY)
        tab.click("#key-form button[type=submit]")
        expect(tab.locator("tr.run-row", has_text=run_id)).to_be_visible()
        assert tab.evaluate("() => sessionStorage.getItem('waterflow.apiKey')") == KEY

        tab.click("#nav a[data-page=agents]")  # asked once: the other pages just work
        expect(tab.locator("#agents tr.agent-row")).to_have_count(1)
        tab.goto(f"{keyed_stack.api_url}/#/runs/{run_id}")
        tab.reload()  # the key outlives a reload of the tab
        expect(tab.locator(".log-line", has_text="keyed-line")).to_have_count(1)  # the watch stream, with the key
        expect(tab.locator("#key-form")).to_have_count(0)

        api_requests = [(u, h) for u, h in page.requests if "/v1/" in u]
        assert any(u.endswith(f"/v1/workflows/{run_id}/watch") for u, _ in api_requests)
        assert all(KEY not in u and "wrong-key" not in u for u, _ in page.requests), "a key went into a URL"
        sent = [h.get("authorization") for _, h in api_requests]
        first = sent.index(f"Bearer {KEY}")
        assert set(sent[:first]) <= {None, "Bearer wrong-key"}
        assert all(h == f"Bearer {KEY}" for h in sent[first:]), sent

        tab.click("#forget-key")
        expect(tab.locator("#key-form")).to_be_visible()
        assert tab.evaluate("() => sessionStorage.getItem('waterflow.apiKey')") is None
    finally:
        page.close()
    with pytest.raises(ApiError) as refused:
        Client(keyed_stack.api_url).list()
    assert refused.value.status == 401


def test_the_docs_page_renders_the_spec_in_a_browser(page: Page) -> None:
    expect = _expect()
    tab = page.goto("/docs")
    expect(tab.locator(".opblock-summary-path", has_text="/v1/workflows/{run_id}/watch")).to_have_count(1)
    spec = yaml.safe_load(SPEC_FILE.read_text())
    operations = sum(1 for item in spec["paths"].values() for m in item if m in HTTP_METHODS)
    expect(tab.locator(".opblock")).to_have_count(operations)
    expect(tab.locator("#docs-error")).to_be_hidden()
    assert "Unable to render this definition" not in tab.content()


def test_the_runs_list_pages_back_and_forth(page: Page, client: Client) -> None:
    """51 runs (jobs skipped by `if: false`: nothing for the agent to do) fill the first page of 50
    and spill one onto the next; Older and Newer follow the API's `next` cursor."""
    expect = _expect()
    name = f"paged-{int(time.time() * 1000)}"
    workflow = f"name: {name}\njobs:\n  j:\n    if: false\n    runs-on: local\n    steps:\n      - run: echo no\n"
    # Newest first means by run id (time-ordered; ids made in the same millisecond sort by their random part).
    ids = sorted((client.submit(workflow)["id"] for _ in range(51)), reverse=True)
    tab = page.goto("/#/runs")
    tab.fill("#name-filter", name)
    rows = tab.locator("tr.run-row")
    expect(rows).to_have_count(50)
    expect(tab.locator("tr.run-row", has_text=ids[-1])).to_have_count(0)  # the oldest is on the next page
    expect(tab.locator("tr.run-row").first).to_contain_text(ids[0])  # newest first
    tab.click("text=Older →")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(ids[-1])
    tab.click("text=← Newer")
    expect(rows).to_have_count(50)
    expect(tab.locator("text=← Newer")).to_be_disabled()
