"""Chat-template analysis: server-side template injection shapes in Jinja chat templates.

Chat templates ship beside weights (``chat_template.jinja``, ``tokenizer_config.json``, GGUF
``tokenizer.chat_template``) and several runtimes rendered them with an unsandboxed Jinja
environment: llama-cpp-python (CVE-2024-34359), vLLM and SGLang (CVE-2026-5760). A template is
data that becomes code there, so we parse it with Jinja's own parser (never render, never compile)
and walk the AST for the shapes every published payload needs: dunder attribute chains, gadget
globals used as objects, attribute names built at run time, and file-loading tags.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from scanners._jsonpos import JsonSource, Step
from scanners._yaml import may_hold_keys
from scanners.base import Artifact
from supplychain.core.model import Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

if TYPE_CHECKING:
    from jinja2 import Environment, nodes

TEMPLATE_OWASP = ("LLM03", "LLM05")
"""Supply chain, and improper output handling (the rendered template runs on the server)."""
TEMPLATE_ATLAS = ("AML.T0010", "AML.T0011")
CVE_REFS = (
    "https://nvd.nist.gov/vuln/detail/CVE-2024-34359",
    "https://justappsec.com/news/2026-04-sglang-gguf-ssti-rce",
)

TPL001 = make_rule(
    "TPL001",
    "Chat template reaches Python internals",
    Severity.CRITICAL,
    "The template reads a dunder or private attribute (``__class__``, ``__globals__``, "
    "``__subclasses__``, ``__builtins__``…). Chat templates only format messages; the only reason "
    "to walk Python object internals is to escape into arbitrary code when a runtime renders the "
    "template without a sandbox (CVE-2024-34359 llama-cpp-python, vLLM, SGLang CVE-2026-5760).",
    "Do not serve this model; replace the chat template with the upstream one and render templates "
    "only in jinja2.sandbox.ImmutableSandboxedEnvironment.",
    cwe=1336,
    owasp_llm=TEMPLATE_OWASP,
    atlas=TEMPLATE_ATLAS,
    references=CVE_REFS,
)
TPL002 = make_rule(
    "TPL002",
    "Chat template references OS or code-execution names",
    Severity.CRITICAL,
    "The template names ``os``, ``subprocess``, ``popen``, ``system``, ``eval``, ``exec``, "
    "``__import__`` or similar. Reaching them from a template is remote code execution on the "
    "inference server.",
    "Do not serve this model; replace the chat template with a reviewed one.",
    cwe=94,
    owasp_llm=TEMPLATE_OWASP,
    atlas=TEMPLATE_ATLAS,
    references=CVE_REFS,
)
TPL003 = make_rule(
    "TPL003",
    "Chat template builds attribute names at run time",
    Severity.HIGH,
    "An attribute or item name is computed (``|attr(x)`` with a non-constant name, string "
    "concatenation, ``|join``, ``|format``/``%c`` or ``str.format`` field access). This is how "
    "payloads hide ``__globals__`` from keyword filters; ordinary templates use constant names.",
    "Review the template by hand; replace it with the upstream template if the dynamic lookup is "
    "not needed.",
    cwe=1336,
    owasp_llm=TEMPLATE_OWASP,
    atlas=TEMPLATE_ATLAS,
    references=CVE_REFS,
)
TPL004 = make_rule(
    "TPL004",
    "Chat template uses a gadget global as an object",
    Severity.HIGH,
    "``cycler``, ``joiner``, ``namespace``, ``lipsum``, ``range``, ``dict``, ``self`` (or Flask's "
    "``config``/``request``/``url_for``…) are used as objects rather than called. Their "
    "``__init__.__globals__`` is the usual first step of a Jinja sandbox escape.",
    "Review the template; legitimate templates only call these, e.g. ``namespace(found=false)``.",
    cwe=1336,
    owasp_llm=TEMPLATE_OWASP,
    atlas=TEMPLATE_ATLAS,
    references=CVE_REFS,
)
TPL005 = make_rule(
    "TPL005",
    "Chat template loads other templates",
    Severity.MEDIUM,
    "``{% include %}``, ``{% import %}``, ``{% from %}`` or ``{% extends %}`` make the renderer "
    "load another template by name, which can read files on the server when a file-system loader "
    "is configured, and pulls in content this scan never saw.",
    "Inline the needed markup into the chat template.",
    cwe=73,
    owasp_llm=TEMPLATE_OWASP,
    atlas=TEMPLATE_ATLAS,
)
TPL006 = make_rule(
    "TPL006",
    "Chat template could not be analysed",
    Severity.HIGH,
    "The template does not parse as Jinja, is nested too deeply, or is too large to analyse. "
    "Renderers differ (Jinja2, minja), so a template one parser rejects may still run elsewhere; "
    "an unanalysed template is never reported clean.",
    "Replace the chat template with a reviewed one.",
    cwe=20,
    owasp_llm=TEMPLATE_OWASP,
    atlas=TEMPLATE_ATLAS,
)
TPL007 = make_rule(
    "TPL007",
    "Duplicate chat_template key",
    Severity.MEDIUM,
    "The JSON file defines ``chat_template`` more than once. JSON parsers disagree on which "
    "duplicate wins, so a reviewer (or scanner) can be shown one template while the runtime "
    "renders another. Every copy is analysed.",
    "Keep exactly one ``chat_template`` key.",
    cwe=436,
    owasp_llm=TEMPLATE_OWASP,
    atlas=TEMPLATE_ATLAS,
)
TEMPLATE_RULES: tuple[Rule, ...] = (TPL001, TPL002, TPL003, TPL004, TPL005, TPL006, TPL007)

MAX_TEMPLATE_BYTES = 2 * 2**20
"""Largest template text analysed; real chat templates are a few KiB to a few tens of KiB."""
MAX_ISSUES = 50
"""Issues kept per template; one payload usually trips several checks on one line."""
_FOLD_DEPTH = 32
_FOLD_MAX_LEN = 512

DANGEROUS_NAMES = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "builtins",
        "__builtins__",
        "importlib",
        "eval",
        "exec",
        "execfile",
        "compile",
        "__import__",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "pty",
        "socket",
        "posix",
        "nt",
    }
)
"""Global names that no chat template needs and every RCE payload wants."""
ALWAYS_DANGEROUS_NAMES = frozenset(
    {"os", "sys", "subprocess", "builtins", "__builtins__", "importlib", "eval", "exec"}
)
"""Flagged even when the template assigns a local of that name (others are then just locals)."""

PROCESS_CALLS = frozenset(
    {
        "popen",
        "Popen",
        "system",
        "spawnl",
        "spawnv",
        "spawnve",
        "spawnlp",
        "spawnvp",
        "execv",
        "execve",
        "execl",
        "execlp",
        "execvp",
        "getoutput",
        "getstatusoutput",
        "check_output",
        "check_call",
        "import_module",
        "load_module",
        "exec_module",
        "eval",
        "exec",
        "fork",
        "kill",
        "unlink",
        "rmtree",
        "__import__",
    }
)
"""Functions that run commands or import code: flagged when *called* (``x.system(...)``).

A bare read (``ns.system`` holding a system prompt) is ordinary template state.
"""
MODULE_NAMES = frozenset(
    {"os", "sys", "subprocess", "builtins", "__builtins__", "importlib", "posix", "pty", "socket"}
)
"""Modules and namespaces: flagged when *used as an object* (``g.os.popen``, ``d['os'].x``)."""

INTERNAL_ATTRS = frozenset(
    {
        "mro",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "tb_frame",
        "tb_next",
        "func_globals",
        "func_code",
        "im_func",
        "im_self",
        "co_code",
    }
)
"""Non-underscore internals the Jinja sandbox also blocks (frames, code objects, ``mro``)."""

GADGET_GLOBALS = frozenset(
    {
        "cycler",
        "joiner",
        "namespace",
        "lipsum",
        "range",
        "dict",
        "self",
        "config",
        "request",
        "session",
        "url_for",
        "get_flashed_messages",
    }
)
"""Jinja (and Flask) globals whose ``__init__.__globals__`` opens the module namespace."""

STRING_BUILDING_FILTERS = frozenset(
    {"join", "format", "replace", "reverse", "sum", "center", "indent", "truncate", "wordwrap"}
)
"""Filters that assemble new strings; their output as a lookup name means obfuscation."""
STRING_BUILDING_METHODS = frozenset({"format", "format_map", "join", "replace", "zfill"})
"""``str`` methods that assemble new strings."""
PASS_THROUGH_FILTERS = frozenset(
    {"string", "lower", "upper", "title", "capitalize", "trim", "first", "last", "list"}
)
"""Filters that only reshape their input: string-built only if their input is.

``role_map[message.role|lower]`` is an ordinary lookup; ``x[(a ~ b)|lower]`` is not.
"""
PASS_THROUGH_METHODS = frozenset({"lower", "upper", "strip", "lstrip", "rstrip", "swapcase"})
ATTRIBUTE_FILTERS = frozenset(
    {"map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"}
)
"""Filters taking an ``attribute=`` name (a dotted lookup path Jinja resolves with getattr)."""

_SIMPLE_STRING_FILTERS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "reverse": lambda text: text[::-1],
    "string": str,
    "trim": str.strip,
    "title": str.title,
    "capitalize": str.capitalize,
}
"""Argument-free string filters our folder applies to constants."""
_DUNDER = re.compile(r"__[A-Za-z][A-Za-z0-9_]*__")
_PY_DUNDER = re.compile(r"__[a-z][a-z0-9_]*__")
"""Python's own special names are lower case; ``'__NOT_A_NUMBER__'`` in a code template (torch
inductor's Triton templates) is a marker string, not an attribute a gadget chain can reach."""
_FORMAT_FIELD = re.compile(r"\{([^{}:!]*)[^{}]*\}")
_PERCENT_C = re.compile(r"%[-#0 +]*\d*c")


@dataclass(frozen=True, slots=True)
class TemplateIssue:
    """One suspicious construct found in a template."""

    rule: Rule
    message: str
    evidence: str
    line: int | None = None
    """1-based line in the template text, when the parser knows it."""
    severity: Severity | None = None
    """Overrides the rule's default severity when set."""
    confidence: Confidence = Confidence.HIGH
    needle: str | None = None
    """Source text of the offending name (attribute, filter, key…), to find it on its line."""
    pos: int | None = None
    """0-based character position of the construct in the template: the needle on the issue's
    line when it is there, else the start of that line (Jinja nodes carry lines, not columns)."""


_NEWLINE = re.compile(r"\r\n|\r|\n")
"""Jinja's own line breaks (``jinja2.lexer.newline_re``), so line numbers agree with its own."""


def _line_start(text: str, line: int) -> int | None:
    """Character position where 1-based ``line`` of ``text`` starts."""
    if line <= 1:
        return 0
    for seen, match in enumerate(_NEWLINE.finditer(text), 2):
        if seen == line:
            return match.end()
    return None


def _place(text: str, issue: TemplateIssue) -> TemplateIssue:
    """``issue`` with ``pos`` set from its line and needle (see ``TemplateIssue.pos``)."""
    start = _line_start(text, issue.line or 1)
    if start is None:
        return issue
    newline = _NEWLINE.search(text, start)
    end = newline.start() if newline else len(text)
    pos = start
    if issue.needle:
        # A whole word first (``os`` is not the one in ``cosine``), then any occurrence.
        word = re.compile(rf"(?<![\w]){re.escape(issue.needle)}(?![\w])")
        match = word.search(text, start, end)
        found = match.start() if match else text.find(issue.needle, start, end)
        if found != -1:
            pos = found
    return replace(issue, pos=pos)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """A parse-only Jinja environment with the extensions Hugging Face templates use."""
    from jinja2 import Environment, nodes
    from jinja2.ext import Extension
    from jinja2.parser import Parser

    class GenerationTag(Extension):
        """Parses transformers' ``{% generation %}…{% endgeneration %}`` marker (no runtime)."""

        tags: ClassVar[set[str]] = {"generation"}  # type: ignore[misc]

        def parse(self, parser: Parser) -> nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    # NOTE: this environment only ever calls .parse(); templates are never compiled or rendered.
    return Environment(  # noqa: S701 - autoescape is irrelevant: nothing is rendered
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", GenerationTag]
    )


_JINJA_KEYWORDS = frozenset(
    {
        "if",
        "elif",
        "else",
        "endif",
        "for",
        "endfor",
        "set",
        "endset",
        "macro",
        "endmacro",
        "call",
        "endcall",
        "filter",
        "endfilter",
        "raw",
        "endraw",
        "with",
        "endwith",
        "block",
        "endblock",
        "extends",
        "include",
        "import",
        "from",
        "do",
        "break",
        "continue",
        "generation",
        "endgeneration",
        "autoescape",
        "endautoescape",
    }
)
"""Statement names Jinja (with the extensions chat templates use) knows; Django's ``load``/``url``,
Liquid's ``assign``/``capture`` and friends are other languages."""
_OPENER = re.compile(r"\{[%{#]")
_CLOSERS = {"{%": "%}", "{{": "}}", "{#": "#}"}
MAX_TAG_CHARS = 4000
"""Longest Jinja tag considered; an expression also spans at most three lines, so ``{{``
opening a block of C or Python format text (``{{\n    PyObject *tmp;…}}``) or a Vim fold
marker (``{{{``) is not one."""


def _tag_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the Jinja tags in ``text``, left to right, in linear time.

    Each closer's next position is cached, so a text full of openers with no closer (a vocabulary
    listing ``{%``) costs one search per opener kind, not one per opener.
    """
    spans: list[tuple[int, int]] = []
    next_close: dict[str, int] = {}
    pos = 0
    for match in _OPENER.finditer(text):
        start = match.start()
        if start < pos:
            continue
        opener = match.group(0)
        closer = _CLOSERS[opener]
        close = next_close.get(opener, -2)
        if close != -1 and close < start + 2:
            close = text.find(closer, start + 2)
            next_close[opener] = close
        if close < 0 or close - start > MAX_TAG_CHARS:
            continue
        if opener == "{{" and (
            text.startswith("{", start + 2) or text.count("\n", start, close) > 2
        ):
            continue
        spans.append((start, close + 2))
        pos = close + 2
    return spans


_STMT_WORD = re.compile(r"\{%[-+]?\s*([A-Za-z_]\w*)")
_GO_OR_MUSTACHE = re.compile(
    r"\{\{-?\s*(?:\.|\$|end\b|range\b|define\b|template\b|include\s+\"|toYaml\b|[#/^>&!]|"
    r"(?:py:|for\b|if\b|endfor\b|endif\b|else\b|elif\b|def\b|enddef\b|default\b|inherit\b))"
)
"""Go/Helm (``{{ .Values.x }}``, ``{{ end }}``), Handlebars/Mustache (``{{#each}}``) and Tempita
(``{{py:``, ``{{for x in y}}``): statements inside ``{{ }}`` are never Jinja."""
_PROSE_MARKERS = re.compile(
    r"^(?:```|~~~|---\s*$|\s*(?:def|class|import|from)\s+\w[\w.]*[\s:(]|\s*<(?:!doctype|"
    r"html|head|body|div|script)\b)",
    re.IGNORECASE | re.MULTILINE,
)
"""Outside the Jinja tags: Markdown fences/front matter, Python statements, HTML pages."""
_HEADING = re.compile(r"^#{1,6} \S", re.MULTILINE)
"""Markdown headings: a template may print one (``# Tools``), a document has several."""
HEADED_TEMPLATE_DENSITY = 0.5
MIN_TEMPLATE_DENSITY = 0.25
"""Share of non-blank characters inside Jinja tags: chat templates are mostly tags (Llama-3,
ChatML: 60-100%), a README or a source file with one ``{{ }}`` example is not."""
SINGLE_EXPRESSION_DENSITY = 0.6
"""A file holding a single ``{{ … }}`` must be mostly that expression."""


def looks_like_template(head: bytes) -> bool:
    """Whether text (the first bytes of a file) reads as a Jinja template; called by ``sniff``.

    Precise rather than eager: anything routed here that does not parse is a TPL006 finding that
    fails the gate, so a README with a ``{{ }}`` example, a Helm chart or a Python file must not
    come here. Needs Jinja statements with Jinja keywords (or several expressions), no Go/Mustache
    syntax, no Markdown/Python/HTML structure outside the tags, and tags making up a large share
    of the text. JSON documents are configs, even when they carry a template string.
    """
    if b"\x00" in head:
        return False
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text or (text[0] in "{[" and text[:2] not in ("{%", "{{", "{#")):
        return False
    if text.count("\ufffd") > 8 or _GO_OR_MUSTACHE.search(text):
        return False
    bounds = _tag_spans(text)
    spans = [text[a:b] for a, b in bounds]
    statements = [w for s in spans if (w := _stmt_word(s)) is not None]
    if any(word not in _JINJA_KEYWORDS for word in statements):
        return False
    expressions = sum(1 for s in spans if s.startswith("{{"))
    if not statements and not expressions:
        return False
    cuts = [0, *(x for span in bounds for x in span), len(text)]
    outside = " ".join(text[cuts[i] : cuts[i + 1]] for i in range(0, len(cuts), 2))
    if _PROSE_MARKERS.search(outside):
        return False
    inside = sum(len("".join(s.split())) for s in spans)
    total = inside + len("".join(outside.split()))
    density = inside / total if total else 0.0
    headings = len(_HEADING.findall(outside))
    if headings > 1 or (headings and density < HEADED_TEMPLATE_DENSITY):
        return False
    if not statements and expressions == 1:
        # One expression and little else (a bare payload file); prose with one example is not.
        return density >= SINGLE_EXPRESSION_DENSITY
    return density >= MIN_TEMPLATE_DENSITY


def _stmt_word(span: str) -> str | None:
    match = _STMT_WORD.match(span)
    return match.group(1) if match else None


def analyze_template(text: str) -> list[TemplateIssue]:
    """Parse ``text`` as Jinja and return the injection shapes it contains (empty means clean).

    Never renders or compiles the template. Malformed, oversized or too-deeply nested templates
    give a TPL006 issue instead of raising.
    """
    if len(text) > MAX_TEMPLATE_BYTES:
        return [
            TemplateIssue(
                TPL006,
                f"template of {len(text)} characters is larger than the "
                f"{MAX_TEMPLATE_BYTES}-character analysis cap",
                evidence=text[:80],
                pos=0,
            )
        ]
    from jinja2.exceptions import TemplateSyntaxError

    try:
        tree = _environment().parse(text)
    except TemplateSyntaxError as exc:
        issue = TemplateIssue(
            TPL006, f"template does not parse: {exc.message}", evidence="", line=exc.lineno
        )
        return [_place(text, issue)]
    except RecursionError:
        return [
            TemplateIssue(TPL006, "template nested too deeply to parse", evidence=text[:80], pos=0)
        ]
    except (ValueError, TypeError, LookupError, OverflowError) as exc:
        return [TemplateIssue(TPL006, f"template does not parse: {exc}", evidence=text[:80], pos=0)]
    return [_place(text, issue) for issue in _Walker(tree).run()]


class _Walker:
    """One pass over a parsed template: collect bindings, then check every node."""

    def __init__(self, tree: nodes.Template) -> None:
        self.tree = tree
        self.issues: list[TemplateIssue] = []
        self.seen: dict[tuple[str, int | None], int] = {}
        self.parents: dict[int, nodes.Node] = {}
        self.all_nodes: list[nodes.Node] = []
        self.stored: set[str] = set()
        self.string_bindings: dict[str, set[str]] = {}
        """``{% set name = 'const' %}`` values, so ``x[name]`` resolves (flow-insensitive)."""
        self.string_built: set[str] = set()
        """Variables assigned from string-building expressions we could not fold."""
        self.reported: set[int] = set()
        """Ids of nodes already explained by a more specific issue."""

    def run(self) -> list[TemplateIssue]:
        from jinja2 import nodes

        stack: list[nodes.Node] = [self.tree]
        while stack:
            node = stack.pop()
            self.all_nodes.append(node)
            children = list(node.iter_child_nodes())
            for child in children:
                self.parents[id(child)] = node
            stack.extend(reversed(children))
        for node in self.all_nodes:
            if isinstance(node, nodes.Name) and node.ctx in ("store", "param"):
                self.stored.add(node.name)
        self._collect_bindings()
        # Pre-order (parents before children): outer constructs claim their operands first, and
        # the first issue kept for a line carries the longest chain as evidence.
        for node in self.all_nodes:
            self._check(node)
            if len(self.issues) >= MAX_ISSUES:
                break
        return sorted(self.issues, key=lambda i: (i.line or 0, i.rule.id))

    def _collect_bindings(self) -> None:
        """String values of variables (``set``, ``set`` blocks, ``with``, ``for`` over literals).

        Flow-insensitive and iterated to a fixpoint, so a name split over several ``set``
        statements (``{% set a = '__cla' %}{% set a = a ~ 'ss__' %}``) still resolves.
        """
        from jinja2 import nodes

        pairs: list[tuple[str, nodes.Node]] = []
        for node in self.all_nodes:
            if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
                pairs.append((node.target.name, node.node))
            elif isinstance(node, nodes.With):
                for target, value in zip(node.targets, node.values, strict=False):
                    if isinstance(target, nodes.Name):
                        pairs.append((target.name, value))
            elif (
                isinstance(node, nodes.For)
                and isinstance(node.target, nodes.Name)
                and isinstance(node.iter, (nodes.List, nodes.Tuple))
            ):
                pairs.extend((node.target.name, item) for item in node.iter.items)
            elif isinstance(node, nodes.AssignBlock) and isinstance(node.target, nodes.Name):
                text = _static_block_text(node.body)
                if text is not None:
                    self.string_bindings.setdefault(node.target.name, set()).add(text)
        for _ in range(8):
            changed = False
            for name, expr in pairs:
                if self._is_string_built(expr, 0) and name not in self.string_built:
                    self.string_built.add(name)
                    changed = True
                bound = self.string_bindings.setdefault(name, set())
                if len(bound) >= 16:
                    continue
                folded = self._fold(expr, 0)
                if folded is not None and folded not in bound:
                    bound.add(folded)
                    changed = True
            if not changed:
                break

    # -- reporting -------------------------------------------------------------------------

    def _add(
        self,
        rule: Rule,
        message: str,
        node: nodes.Node,
        *,
        severity: Severity | None = None,
        confidence: Confidence = Confidence.HIGH,
    ) -> None:
        # One issue per rule and line (a payload chain trips the same check on every link); a
        # more severe sighting on the same line replaces a milder one.
        issue = TemplateIssue(
            rule, message, _render(node, 0), node.lineno, severity, confidence, _needle(node, 0)
        )
        key = (rule.id, node.lineno)
        index = self.seen.get(key)
        if index is None:
            self.seen[key] = len(self.issues)
            self.issues.append(issue)
        elif _effective(issue) > _effective(self.issues[index]):
            self.issues[index] = issue

    def _check_name_text(self, name: str, node: nodes.Node, how: str) -> bool:
        """Judge an attribute or item name; return True when it was reported."""
        if _DUNDER.fullmatch(name):
            self._add(TPL001, f"{how} dunder attribute {name!r}", node)
            return True
        if name in INTERNAL_ATTRS:
            self._add(TPL001, f"{how} interpreter internal {name!r}", node)
            return True
        if name.startswith("_"):
            self._add(TPL001, f"{how} private attribute {name!r}", node, severity=Severity.HIGH)
            return True
        return self._check_dangerous(name, node, how)

    def _check_dangerous(self, name: str, node: nodes.Node, how: str) -> bool:
        """Module or process-function names, judged by how the looked-up value is used."""
        if name in PROCESS_CALLS and self._is_called(node):
            self._add(TPL002, f"{how} and calls {name!r}, a process/import function", node)
            return True
        if name in MODULE_NAMES and self._is_used_as_object(node):
            self._add(TPL002, f"{how} {name!r} and uses it as a module", node)
            return True
        return False

    def _is_called(self, node: nodes.Node) -> bool:
        from jinja2 import nodes

        parent = self.parents.get(id(node))
        return isinstance(parent, nodes.Call) and parent.node is node

    def _is_used_as_object(self, node: nodes.Node) -> bool:
        from jinja2 import nodes

        parent = self.parents.get(id(node))
        if isinstance(parent, (nodes.Getattr, nodes.Getitem, nodes.Call)):
            return parent.node is node
        return isinstance(parent, nodes.Filter) and parent.node is node and parent.name == "attr"

    # -- checks ----------------------------------------------------------------------------

    def _check(self, node: nodes.Node) -> None:
        from jinja2 import nodes

        if isinstance(node, nodes.Getattr):
            self._check_name_text(node.attr, node, "reads")
        elif isinstance(node, nodes.Getitem):
            self._check_getitem(node)
        elif isinstance(node, nodes.Filter):
            self._check_filter(node)
        elif isinstance(node, nodes.Call):
            self._check_call(node)
        elif isinstance(node, nodes.Name):
            self._check_name(node)
        elif isinstance(node, nodes.NSRef):
            if node.attr.startswith("_") or node.attr in INTERNAL_ATTRS:
                self._check_name_text(node.attr, node, "assigns")
        elif isinstance(node, nodes.Keyword):
            if _DUNDER.fullmatch(node.key):
                self._add(TPL001, f"keyword argument named {node.key!r}", node)
        elif isinstance(node, nodes.Const):
            self._check_const(node)
        elif isinstance(node, nodes.Mod):
            self._check_percent(node)
        elif isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            tag = type(node).__name__.lower().replace("fromimport", "from")
            self._add(TPL005, f"{{% {tag} %}} loads another template", node)

    def _check_getitem(self, node: nodes.Getitem) -> None:
        from jinja2 import nodes

        arg = node.arg
        if isinstance(arg, nodes.Const):
            if isinstance(arg.value, str):
                self.reported.add(id(arg))
                self._check_name_text(arg.value, node, "indexes")
            return
        if isinstance(arg, nodes.Slice):
            return
        self._check_dynamic_name(arg, node, "indexes")

    def _check_dynamic_name(self, expr: nodes.Node, node: nodes.Node, how: str) -> None:
        """A computed lookup name: resolve it if we can, else flag string-built ones."""
        from jinja2 import nodes

        values = self._resolve(expr)
        if values:
            for value in values:
                if self._check_name_text(value, node, f"{how} computed") and not isinstance(
                    expr, nodes.Name
                ):
                    self._mark_operands(expr)
            return
        if self._is_string_built(expr, 0):
            self._add(TPL003, f"{how} a name built from strings at run time", node)
            self._mark_operands(expr)

    def _check_filter(self, node: nodes.Filter) -> None:
        from jinja2 import nodes

        name = node.name
        if name == "attr":
            if not node.args:
                return
            arg = node.args[0]
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                self.reported.add(id(arg))
                self._check_name_text(arg.value, node, "|attr() reads")
                return
            values = self._resolve(arg)
            if values:
                for value in values:
                    self._check_name_text(value, node, "|attr() reads computed")
                self._mark_operands(arg)
                return
            self._add(TPL003, "|attr() with a name computed at run time", node)
            self._mark_operands(arg)
            return
        if name in ATTRIBUTE_FILTERS:
            paths: list[nodes.Node] = [kw.value for kw in node.kwargs if kw.key == "attribute"]
            if name == "map" and len(node.args) >= 2:
                first = node.args[0]
                if isinstance(first, nodes.Const) and first.value == "attr":
                    paths.append(node.args[1])
            for path in paths:
                if isinstance(path, nodes.Const) and isinstance(path.value, str):
                    self.reported.add(id(path))
                    for part in path.value.split("."):
                        self._check_name_text(part, node, f"|{name}(attribute=) reads")
                elif not (isinstance(path, nodes.Const) and isinstance(path.value, int)):
                    self._check_dynamic_name(path, node, f"|{name}(attribute=) reads")
        if name == "format" and node.node is not None:
            self._check_percent_format(node.node, node)

    def _check_call(self, node: nodes.Call) -> None:
        from jinja2 import nodes

        func = node.node
        if not (isinstance(func, nodes.Getattr) and func.attr in ("format", "format_map")):
            return
        # NOTE: str.format resolves ``{0.__class__}`` / ``{0[key]}`` fields with getattr/getitem,
        # outside Jinja's own attribute checks (the sandbox needs a special formatter for it).
        receiver = func.node
        if isinstance(receiver, nodes.Const) and isinstance(receiver.value, str):
            formats: set[str] = {receiver.value}
        elif isinstance(receiver, nodes.Name):
            formats = self._resolve(receiver)
            if not formats:
                self._add(
                    TPL003,
                    "str.format() on a format string computed at run time",
                    node,
                    confidence=Confidence.MEDIUM,
                )
                return
        elif self._is_string_built(receiver, 0):
            self._add(TPL003, "str.format() on a format string built at run time", node)
            return
        else:
            return
        self.reported.add(id(receiver))
        for fmt in formats:
            if not _format_fields_look_up(fmt):
                continue
            if _DUNDER.search(fmt):
                self._add(TPL001, "str.format() field reads a dunder attribute", node)
            else:
                self._add(TPL003, "str.format() field does attribute lookups", node)

    def _check_name(self, node: nodes.Name) -> None:
        from jinja2 import nodes

        if node.ctx != "load":
            if _DUNDER.fullmatch(node.name):
                self._add(TPL001, f"binds a variable named {node.name!r}", node)
            return
        if node.name in DANGEROUS_NAMES and (
            node.name in ALWAYS_DANGEROUS_NAMES or node.name not in self.stored
        ):
            self._add(TPL002, f"uses the global {node.name!r}", node)
            return
        if _DUNDER.fullmatch(node.name):
            self._add(TPL001, f"uses the name {node.name!r}", node)
            return
        if node.name in GADGET_GLOBALS and node.name not in self.stored:
            parent = self.parents.get(id(node))
            if isinstance(parent, nodes.Call) and parent.node is node:
                return
            self._add(TPL004, f"uses the global {node.name!r} as an object", parent or node)

    def _check_const(self, node: nodes.Const) -> None:
        value = node.value
        if not isinstance(value, str) or id(node) in self.reported:
            return
        match = _PY_DUNDER.search(value)
        if match:
            self._add(
                TPL001,
                f"string literal contains the dunder name {match.group(0)!r}",
                node,
                severity=Severity.HIGH,
                confidence=Confidence.MEDIUM,
            )

    def _check_percent(self, node: nodes.Mod) -> None:
        self._check_percent_format(node.left, node)

    def _check_percent_format(self, fmt: nodes.Node, node: nodes.Node) -> None:
        from jinja2 import nodes

        if (
            isinstance(fmt, nodes.Const)
            and isinstance(fmt.value, str)
            and len(_PERCENT_C.findall(fmt.value)) >= 2
        ):
            self._add(TPL003, "builds a string from character codes with %c", node)

    # -- helpers ---------------------------------------------------------------------------

    def _mark_operands(self, expr: nodes.Node) -> None:
        from jinja2 import nodes

        for sub in expr.find_all(nodes.Const):
            self.reported.add(id(sub))
        self.reported.add(id(expr))

    def _resolve(self, expr: nodes.Node) -> set[str]:
        """Constant string values ``expr`` can take: folded literals or ``{% set %}`` bindings."""
        from jinja2 import nodes

        if isinstance(expr, nodes.Name) and expr.ctx == "load":
            return set(self.string_bindings.get(expr.name, ()))
        folded = self._fold(expr, 0)
        return {folded} if folded is not None else set()

    def _fold(self, expr: nodes.Node, depth: int) -> str | None:
        """Fold string-building expressions over constants; ``None`` when not constant.

        Our own tiny evaluator (never Jinja's ``as_const``, which would call filters): only
        concatenation, repetition, join and a few case/reverse filters, with a length cap.
        """
        from jinja2 import nodes

        if depth > _FOLD_DEPTH:
            return None
        result: str | None = None
        if isinstance(expr, nodes.Const) and isinstance(expr.value, str):
            result = expr.value
        elif isinstance(expr, nodes.Name) and expr.ctx == "load":
            bound = self.string_bindings.get(expr.name, set())
            result = next(iter(bound)) if len(bound) == 1 else None
        elif isinstance(expr, nodes.Concat):
            parts = [self._fold(n, depth + 1) for n in expr.nodes]
            result = None if any(p is None for p in parts) else "".join(p or "" for p in parts)
        elif isinstance(expr, nodes.Add):
            left, right = self._fold(expr.left, depth + 1), self._fold(expr.right, depth + 1)
            result = left + right if left is not None and right is not None else None
        elif isinstance(expr, nodes.Mul):
            result = self._fold_repeat(expr, depth)
        elif isinstance(expr, nodes.Filter) and expr.node is not None:
            result = self._fold_filter(expr, depth)
        elif isinstance(expr, (nodes.List, nodes.Tuple)):
            parts = [self._fold(n, depth + 1) for n in expr.items]
            result = None if any(p is None for p in parts) else "\x00".join(p or "" for p in parts)
        if result is not None and len(result) > _FOLD_MAX_LEN:
            return None
        return result

    def _fold_repeat(self, expr: nodes.Mul, depth: int) -> str | None:
        from jinja2 import nodes

        for text_node, count_node in ((expr.left, expr.right), (expr.right, expr.left)):
            if isinstance(count_node, nodes.Const) and type(count_node.value) is int:
                text = self._fold(text_node, depth + 1)
                count = count_node.value
                if text is not None and count >= 0 and len(text) * count <= _FOLD_MAX_LEN:
                    return text * count
        return None

    def _fold_filter(self, expr: nodes.Filter, depth: int) -> str | None:
        from jinja2 import nodes

        assert expr.node is not None
        inner = self._fold(expr.node, depth + 1)
        if inner is None:
            return None
        name = expr.name
        if name == "join":
            sep = ""
            if expr.args:
                folded_sep = self._fold(expr.args[0], depth + 1)
                if folded_sep is None:
                    return None
                sep = folded_sep
            if isinstance(expr.node, (nodes.List, nodes.Tuple)):
                return sep.join(inner.split("\x00")) if inner else ""
            return sep.join(inner)
        if name == "replace" and len(expr.args) == 2:
            old_text = self._fold(expr.args[0], depth + 1)
            new_text = self._fold(expr.args[1], depth + 1)
            if old_text is None or new_text is None:
                return None
            return inner.replace(old_text, new_text)
        fn = _SIMPLE_STRING_FILTERS.get(name)
        return fn(inner) if fn is not None and not expr.args else None

    def _is_string_built(self, expr: nodes.Node, depth: int) -> bool:
        """Does ``expr`` compute a string (concatenation, join, format, string methods)?"""
        from jinja2 import nodes

        if depth > _FOLD_DEPTH:
            return True
        if isinstance(expr, nodes.Concat):
            return True
        if isinstance(expr, nodes.Name):
            return expr.ctx == "load" and expr.name in self.string_built
        if isinstance(expr, nodes.Mod):
            return isinstance(expr.left, nodes.Const) and isinstance(expr.left.value, str)
        if isinstance(expr, (nodes.Add, nodes.Mul)):
            return any(
                (isinstance(side, nodes.Const) and isinstance(side.value, str))
                or self._is_string_built(side, depth + 1)
                for side in (expr.left, expr.right)
            )
        if isinstance(expr, nodes.Filter):
            if expr.name in STRING_BUILDING_FILTERS:
                return True
            return (
                expr.name in PASS_THROUGH_FILTERS
                and expr.node is not None
                and self._is_string_built(expr.node, depth + 1)
            )
        if isinstance(expr, nodes.Call):
            func = expr.node
            if not isinstance(func, nodes.Getattr):
                return False
            if func.attr in STRING_BUILDING_METHODS:
                return True
            return func.attr in PASS_THROUGH_METHODS and self._is_string_built(func.node, depth + 1)
        if isinstance(expr, (nodes.Getitem, nodes.Getattr)):
            base = expr.node
            return self._is_string_built(base, depth + 1) and not isinstance(
                getattr(expr, "arg", None), nodes.Const
            )
        if isinstance(expr, nodes.CondExpr):
            return any(
                e is not None and self._is_string_built(e, depth + 1)
                for e in (expr.expr1, expr.expr2)
            )
        return False


def _effective(issue: TemplateIssue) -> tuple[Severity, Confidence]:
    return (issue.severity or issue.rule.severity, issue.confidence)


def _static_block_text(body: Sequence[nodes.Node]) -> str | None:
    """The text of a ``{% set x %}…{% endset %}`` body made only of literal output."""
    from jinja2 import nodes

    parts: list[str] = []
    for stmt in body:
        if not isinstance(stmt, nodes.Output):
            return None
        for item in stmt.nodes:
            if isinstance(item, nodes.TemplateData):
                parts.append(item.data)
            elif isinstance(item, nodes.Const) and isinstance(item.value, str):
                parts.append(item.value)
            else:
                return None
    text = "".join(parts)
    return text if len(text) <= _FOLD_MAX_LEN else None


def _format_fields_look_up(fmt: str) -> bool:
    """Does a ``str.format`` string have a field that reads an attribute or item (``{0.x}``)?"""
    return any("." in m.group(1) or "[" in m.group(1) for m in _FORMAT_FIELD.finditer(fmt))


def _needle(node: nodes.Node, depth: int) -> str | None:
    """The name in the source that identifies the construct (what ``_place`` looks for)."""
    from jinja2 import nodes

    if depth > 8:
        return None
    if isinstance(node, (nodes.Getattr, nodes.NSRef)):
        return node.attr
    if isinstance(node, nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            return node.arg.value or None
        return _needle(node.node, depth + 1)
    if isinstance(node, nodes.Call):
        return _needle(node.node, depth + 1)
    if isinstance(node, (nodes.Filter, nodes.Test, nodes.Name)):
        return node.name
    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, str) and node.value else None
    if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        return {"FromImport": "from"}.get(type(node).__name__, type(node).__name__.lower())
    if isinstance(node, nodes.Mod):
        return "%"
    return None


def _render(node: nodes.Node, depth: int) -> str:
    """A short Python-like rendering of an expression for evidence."""
    from jinja2 import nodes

    if depth > 8:
        return "…"
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Const):
        return repr(node.value)[:80]
    if isinstance(node, nodes.Getattr):
        return f"{_render(node.node, depth + 1)}.{node.attr}"
    if isinstance(node, nodes.Getitem):
        return f"{_render(node.node, depth + 1)}[{_render(node.arg, depth + 1)}]"
    if isinstance(node, nodes.Call):
        args = ", ".join(_render(a, depth + 1) for a in node.args[:3])
        return f"{_render(node.node, depth + 1)}({args})"
    if isinstance(node, nodes.Filter):
        base = "" if node.node is None else _render(node.node, depth + 1)
        args = ", ".join(_render(a, depth + 1) for a in node.args[:3])
        return f"{base}|{node.name}({args})" if node.args else f"{base}|{node.name}"
    if isinstance(node, nodes.Concat):
        return " ~ ".join(_render(n, depth + 1) for n in node.nodes[:4])
    if isinstance(node, nodes.BinExpr):
        return f"{_render(node.left, depth + 1)} {node.operator} {_render(node.right, depth + 1)}"
    if isinstance(node, nodes.NSRef):
        return f"{node.name}.{node.attr}"
    if isinstance(node, nodes.Keyword):
        return f"{node.key}={_render(node.value, depth + 1)}"
    if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        return f"{type(node).__name__.lower()} {_render(node.template, depth + 1)}"
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return "[" + ", ".join(_render(n, depth + 1) for n in node.items[:4]) + "]"
    return type(node).__name__


def template_findings(
    artifact: Artifact,
    text: str,
    where: str,
    offset: int | None = None,
    position: Callable[[int], int | None] | None = None,
) -> Iterator[Finding]:
    """Analyse one template and turn its issues into findings on ``artifact``.

    ``where`` names the template inside the artifact (a JSON key or GGUF metadata key).
    ``position`` maps a character of ``text`` to its byte offset in the file, so each finding
    points at its construct; without it every finding carries ``offset``.
    """
    for issue in analyze_template(text):
        line = f" (line {issue.line})" if issue.line is not None else ""
        at = None if position is None or issue.pos is None else position(issue.pos)
        yield artifact.finding(
            issue.rule,
            f"{where}{line}: {issue.message}",
            evidence=issue.evidence,
            offset=offset if at is None else at,
            severity=issue.severity,
            confidence=issue.confidence,
        )


def templates_in_json(value: object) -> list[tuple[str, str]]:
    """(label, template) pairs from a parsed JSON ``chat_template`` value (string or list)."""
    return [(label, template) for label, template, _steps in _templates_with_steps(value)]


def _templates_with_steps(value: object) -> list[tuple[str, str, tuple[Step, ...]]]:
    """``templates_in_json`` plus where each template sits under the value (JSON steps)."""
    found: list[tuple[str, str, tuple[Step, ...]]] = []
    if isinstance(value, str):
        found.append(("chat_template", value, ()))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                name = item.get("name")
                label = f"chat_template[{name!r}]" if isinstance(name, str) else f"[{i}]"
                found.append((label, item["template"], (i, "template")))
            elif isinstance(item, str):
                found.append((f"chat_template[{i}]", item, (i,)))
    return found


def pairs_keep_all(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """JSON object hook: keep every ``chat_template`` value when the key repeats.

    NOTE: Python's json keeps the last duplicate while other parsers may keep the first, so a
    hidden first template must be analysed too.
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in TEMPLATE_KEYS and key in out:
            prior = out[key]
            merged = prior if isinstance(prior, _Duplicates) else _Duplicates([prior])
            merged.append(value)
            out[key] = merged
        else:
            out[key] = value
    return out


class _Duplicates(list[Any]):
    """Marks a ``chat_template`` key that appeared more than once."""


def may_name_chat_template(text: str) -> bool:
    """Could this JSON have a template key (``chat_template``, ``default_chat_template``,
    ``prompt_template``…)? Escaped keys (``chat\\u005ftemplate``) decode to the same name, so any
    ``\\u`` escape means we must parse to be sure."""
    return '_template"' in text or "\\u" in text


TEMPLATE_KEYS = frozenset({"chat_template", "default_chat_template"})
"""Keys whose value is a chat template (string, or a list of ``{name, template}``) wherever they
sit in a config document."""
MAX_DOC_NODES = 2_000_000
"""Containers of a parsed config visited when looking for template keys (bounded time); lists of
plain values (merges, vocabularies) are not descended into."""


def may_name_template(text: str) -> bool:
    """Could a YAML text hold a template? Keys are plain words there (no JSON escapes), but a
    ``*_template`` key or Jinja tags in a value are worth the parse."""
    return "template" in text or "{%" in text or "{{" in text


def document_templates(
    artifact: Artifact, doc: object, source: JsonSource | None = None
) -> Iterator[Finding]:
    """Analyse every template a parsed JSON/YAML document carries, at any depth.

    ``chat_template``/``default_chat_template`` values are always analysed (a string that does not
    parse is TPL006). Other string values under a key naming a template (``prompt_template``,
    ``tool_template``…) are analysed when they read as Jinja, so Python ``str.format`` prompts
    are not mistaken for broken templates. With ``source`` (the JSON's raw bytes) each finding
    carries the byte offset of its construct in the file.
    """
    stack: list[tuple[object, str, tuple[Step, ...]]] = [(doc, "", ())]
    seen = 0
    while stack:
        node, where, steps = stack.pop()
        seen += 1
        if seen > MAX_DOC_NODES:
            yield artifact.finding(
                TPL006,
                f"document has more than {MAX_DOC_NODES} values; the search for chat templates "
                "stopped there, so this fails closed",
            )
            return
        if isinstance(node, list):
            stack.extend(
                (v, f"{where}[{i}]", (*steps, i)) for i, v in enumerate(node) if may_hold_keys(v)
            )
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key in TEMPLATE_KEYS:
                yield from _key_templates(artifact, key, value, where, (source, steps))
            elif (
                isinstance(value, str)
                and "template" in str(key).lower()
                and looks_like_template(value.encode("utf-8", "surrogatepass"))
            ):
                yield from _located(artifact, value, path, source, (*steps, key))
            elif may_hold_keys(value):
                stack.append((value, path, (*steps, key)))


def _located(
    artifact: Artifact,
    template: str,
    where: str,
    source: JsonSource | None,
    steps: tuple[Step, ...],
) -> Iterator[Finding]:
    """``template_findings`` with offsets from ``source`` (computed only if there is a finding)."""
    if source is None:
        yield from template_findings(artifact, template, where)
        return
    mapper: Callable[[int], int] | None = None
    looked = False

    def position(index: int) -> int | None:
        nonlocal mapper, looked
        if not looked:
            mapper, looked = source.string_mapper(steps), True
        return None if mapper is None else mapper(index)

    yield from template_findings(artifact, template, where, position=position)


def _key_templates(
    artifact: Artifact,
    key: str,
    value: object,
    where: str,
    located: tuple[JsonSource | None, tuple[Step, ...]] = (None, ()),
) -> Iterator[Finding]:
    """Templates under one ``chat_template`` key (duplicates in JSON are all analysed)."""
    source, steps = located
    candidates = list(value) if isinstance(value, _Duplicates) else [value]
    if len(candidates) > 1:
        yield artifact.finding(
            TPL007,
            f"{key!r} key appears {len(candidates)} times; parsers disagree on which one is used",
            evidence=key,
            offset=None if source is None else source.key_offset((*steps, key)),
        )
    for nth, candidate in enumerate(candidates):
        for label, template, inner in _templates_with_steps(candidate):
            if key != "chat_template":
                label = label.replace("chat_template", key, 1)
            yield from _located(
                artifact,
                template,
                f"{where}.{label}" if where else label,
                source,
                (*steps, (key, nth), *inner),
            )


__all__ = [
    "MAX_TEMPLATE_BYTES",
    "TEMPLATE_RULES",
    "TPL001",
    "TPL002",
    "TPL003",
    "TPL004",
    "TPL005",
    "TPL006",
    "TPL007",
    "TemplateIssue",
    "analyze_template",
    "document_templates",
    "looks_like_template",
    "may_name_chat_template",
    "may_name_template",
    "pairs_keep_all",
    "template_findings",
    "templates_in_json",
]
