"""``--format html``: one self-contained page, hostile text escaped, no network; the browser
tests render it in headless Chromium and read Chromium's own network log."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from supplychain import service
from supplychain.cli import main
from supplychain.formats import FORMATS
from supplychain.formats.html import CSP, SCRIPT, STYLE, _csp_hash
from supplychain.policy import Policy
from supplychain.selftest import _zip, dataset_rows, pickle_call, torch_zip

XSS_NAME = "\"'><img src=x onerror=alert(1)><svg onload=alert(2)><script>.pkl"
SENTINEL = "http://sentinel-xss.invalid/e.png"
XSS_ARG = f"<img src={SENTINEL}><script>alert(3)</script>".encode()


class _Collect(HTMLParser):
    """Every tag with its attributes, and all text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)
        else:
            self.text.append(data)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A scan of hostile files rendered as HTML: name and evidence carry markup."""
    tmp_path = tmp_path_factory.mktemp("html")
    target = tmp_path / "scan"
    target.mkdir()
    (target / XSS_NAME).write_bytes(pickle_call("os", "system", XSS_ARG))
    (target / "weights.pkl").write_bytes(pickle_call("os", "system", b"echo supplychain-test"))
    (target / "bundle.zip").write_bytes(
        _zip({"inner/a.pkl": pickle_call("os", "system", b"echo x"), "inner/b.txt": b"hello"})
    )
    (target / "train.jsonl").write_bytes(dataset_rows())
    (target / "pytorch_model.bin").write_bytes(torch_zip())
    out = tmp_path / "report.html"
    code = main(["scan", str(target), "-f", "html", "-o", str(out), "-q", "-j", "1"])
    assert code == 1
    # The JSON twin, rendered from the same report (one scan): what the page must show.
    report = service.run([target], service.settings_from_policy(Policy()), Policy(), jobs=1)
    buf = io.StringIO()
    FORMATS["json"].render(report, buf)
    out.with_suffix(".json").write_text(buf.getvalue())
    return out, out.read_text(encoding="utf-8")


def test_html_has_no_external_urls_and_a_strict_csp(report_html: tuple[Path, str]) -> None:
    _, page = report_html
    parsed = _Collect()
    parsed.feed(page)
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "action", "formaction", "poster", "data", "srcset"):
            assert name not in attrs, (tag, attrs)
        if tag == "link" or tag == "iframe" or tag == "object" or tag == "img":
            raise AssertionError(f"unexpected <{tag}>")
    csp = next(
        a["content"] for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    assert csp == CSP and "default-src 'none'" in csp and "connect-src 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert parsed.scripts == [SCRIPT] and parsed.styles == [STYLE]
    assert _csp_hash(SCRIPT) in csp and _csp_hash(STYLE) in csp
    assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", STYLE + SCRIPT)


def test_html_escapes_hostile_names_and_evidence(report_html: tuple[Path, str]) -> None:
    _, page = report_html
    parsed = _Collect()
    parsed.feed(page)
    assert [t for t, _ in parsed.tags].count("script") == 1
    assert not any("onerror" in attrs or "onload" in attrs for _, attrs in parsed.tags)
    assert "svg" not in [t for t, _ in parsed.tags]
    text = "".join(parsed.text)
    assert XSS_NAME in text  # shown to the reviewer as text
    assert "&lt;img src=" in page and "<img src=" not in page


def test_html_shows_every_finding_and_the_sections(report_html: tuple[Path, str]) -> None:
    path, page = report_html
    parsed = _Collect()
    parsed.feed(page)
    text = "".join(parsed.text)
    rows = [a for t, a in parsed.tags if t == "tr" and "data-sev" in a]
    data = json.loads(path.with_suffix(".json").read_text())
    assert len(data["findings"]) >= 5
    for f in data["findings"]:
        assert f["rule"] in text and f["file"] in text
    assert len(rows) >= len(data["findings"])
    assert "FAIL" in text
    ids = {a.get("id") for _, a in parsed.tags}
    assert {"findings", "archives", "datasets", "traces"} <= ids
    assert "inner/a.pkl" in text  # archive member tree
    hits = page.split('<span class="hit">')[1:]
    assert hits and "system" in hits[0].split("</span>")[0]  # dangerous call highlighted
    assert "DAT019" in text or "DAT018" in text  # trigger rows table
    member_trace = page.split("<h3>pytorch_model.bin ! testfile/data.pkl</h3><pre>", 1)
    assert len(member_trace) == 2, "a torch checkpoint's data.pkl is traced"
    traced = member_trace[1].split("</pre>", 1)[0]
    assert '<span class="hit">' in traced and "system" in traced


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Nothing can leave the machine: every name resolves to nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def _chromium(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """Render ``page``; return the DOM after scripts ran and every URL in the network log."""
    assert CHROMIUM is not None, "install chromium (apt-get install -y chromium)"
    netlog = tmp / f"{page.stem}.netlog.json"
    profile = tmp / f"{page.stem}.profile"
    done = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={netlog}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    events = json.loads(netlog.read_text())["events"]
    urls = [str(e["params"]["url"]) for e in events if "url" in e.get("params", {})]
    return done.stdout, urls


@pytest.mark.browser
def test_browser_renders_the_report_without_network(
    report_html: tuple[Path, str], tmp_path: Path
) -> None:
    path, page = report_html
    dom, urls = _chromium(path, tmp_path)
    assert 'id="verdict"' in dom and "FAIL" in dom
    assert "PKL001" in dom and "bundle.zip" in dom
    # The filter script ran under the CSP hash: INFO rows start hidden.
    assert re.search(r'<tr data-sev="info"[^>]*hidden', dom)
    assert not re.search(r'<tr data-sev="high"[^>]*hidden', dom)
    # No element was created from hostile text, and the page asked for nothing.
    assert "<img" not in dom and "sentinel" not in " ".join(urls)
    assert not [u for u in urls if u.startswith(("http:", "https:")) and "google" not in u]

    # Control 1: the detector works — the same page without its CSP and with an injected image
    # does show the request in the network log.
    leaky = tmp_path / "leaky.html"
    leaky.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace(
            "<main>", '<main><img src="http://sentinel-control.invalid/x.png">', 1
        ),
        encoding="utf-8",
    )
    _, leaky_urls = _chromium(leaky, tmp_path)
    assert any("sentinel-control.invalid" in u for u in leaky_urls)

    # Control 2: with the CSP kept, the same injected image makes no request.
    guarded = tmp_path / "guarded.html"
    guarded.write_text(
        page.replace("<main>", '<main><img src="http://sentinel-control.invalid/x.png">', 1),
        encoding="utf-8",
    )
    _, guarded_urls = _chromium(guarded, tmp_path)
    assert not any("sentinel-control.invalid" in u for u in guarded_urls)
