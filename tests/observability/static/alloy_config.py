"""A reader of Grafana Alloy configuration files, for the subset of the
syntax deploy/observability/alloy/config.alloy uses, and the log and trace
pipelines that file describes, as plain data.

No maintained parser of Alloy's syntax exists on PyPI or npm (the language
is Go-only, in grafana/alloy's syntax package), and no Alloy binary can be
installed here, so this module reads the file itself. It understands:

- `//` and `/* */` comments;
- blocks: a dotted name, an optional quoted label, a body in braces
  (`loki.process "pods" { ... }`, `stage.json { ... }`);
- attributes: `name = expression`;
- expressions: strings ("..." with Alloy's escapes, `raw`), numbers, true,
  false, null, arrays, objects (`{ key = value, "key" = value }`),
  references (`discovery.relabel.pods.output`), function calls
  (`sys.env("K8S_NODE_NAME")`) and `+` between operands.

Anything else (other operators, indexing, heredocs) is a ParseError naming
the line, so a config that grows past this subset fails the tests loudly
instead of being half-read; extend the reader then.

Owns: parsing, and `LogPipeline`, which answers what the log pipeline
produces for a namespace (stream labels, structured metadata, JSON fields
read) by following the components' `forward_to` and `targets` wiring, and
which components an OTLP receiver's traces pass through (`output { traces
= [...] }` blocks). Must not: judge the config (the tests do) or run
anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator


class ParseError(ValueError):
    """The text is not in the subset of Alloy syntax this reader knows."""


@dataclass(frozen=True)
class Ref:
    """A reference to another component's export, e.g. loki.write.loki.receiver."""

    path: str


@dataclass(frozen=True)
class Call:
    """A standard-library function call, e.g. sys.env("K8S_NODE_NAME")."""

    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Concat:
    """Operands joined by `+` (string concatenation in our use)."""

    parts: tuple[Any, ...]


@dataclass
class Block:
    name: str  # e.g. "loki.process" or "stage.json"
    label: str | None
    line: int
    attributes: dict[str, Any] = field(default_factory=dict)
    blocks: list["Block"] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The component's id as references spell it: name.label."""
        return f"{self.name}.{self.label}" if self.label else self.name

    def children(self, name: str) -> list["Block"]:
        return [b for b in self.blocks if b.name == name]

    def walk(self) -> Iterator["Block"]:
        for block in self.blocks:
            yield block
            yield from block.walk()


# ------------------------------------------------------------------ lexer
_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+)
  | (?P<nl>\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:\\.|[^"\\\n])*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\](),=.+])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    line: int


def _unquote(text: str, line: int) -> str:
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ParseError(f"line {line}: unsupported escape \\{nxt} in {text}")
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[_Tok]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ParseError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
        kind, value = match.lastgroup, match.group()
        if kind in ("string", "raw", "ident", "number", "punct"):
            tokens.append(_Tok(kind, value, line))
        line += value.count("\n")
        pos = match.end()
    tokens.append(_Tok("eof", "", line))
    return tokens


# ----------------------------------------------------------------- parser
class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self, text: str | None = None, kind: str | None = None) -> _Tok:
        tok = self.peek()
        if (text is not None and tok.text != text) or (kind is not None and tok.kind != kind):
            want = text or kind
            raise ParseError(f"line {tok.line}: expected {want!r}, found {tok.text or tok.kind!r}")
        self.i += 1
        return tok

    def body(self, root: Block, closing: str | None) -> None:
        while True:
            tok = self.peek()
            if closing is None and tok.kind == "eof":
                return
            if closing is not None and tok.text == closing:
                self.take(closing)
                return
            name_tok = self.take(kind="ident")
            parts = [name_tok.text]
            while self.peek().text == ".":
                self.take(".")
                parts.append(self.take(kind="ident").text)
            if self.peek().text == "=":
                if len(parts) != 1:
                    raise ParseError(f"line {name_tok.line}: attribute name {'.'.join(parts)} has dots")
                self.take("=")
                if parts[0] in root.attributes:
                    raise ParseError(f"line {name_tok.line}: attribute {parts[0]} set twice in {root.id}")
                root.attributes[parts[0]] = self.expression()
                continue
            label = None
            if self.peek().kind == "string":
                label = _unquote(self.take().text, name_tok.line)
            self.take("{")
            block = Block(".".join(parts), label, name_tok.line)
            self.body(block, "}")
            root.blocks.append(block)

    def expression(self) -> Any:
        parts = [self.operand()]
        while self.peek().text == "+":
            self.take("+")
            parts.append(self.operand())
        return parts[0] if len(parts) == 1 else Concat(tuple(parts))

    def operand(self) -> Any:
        tok = self.peek()
        if tok.kind == "string":
            self.take()
            return _unquote(tok.text, tok.line)
        if tok.kind == "raw":
            self.take()
            return tok.text[1:-1]
        if tok.kind == "number":
            self.take()
            return float(tok.text) if re.search(r"[.eE]", tok.text) else int(tok.text)
        if tok.text == "[":
            return self.array()
        if tok.text == "{":
            return self.object()
        if tok.kind == "ident":
            if tok.text in ("true", "false", "null"):
                self.take()
                return {"true": True, "false": False, "null": None}[tok.text]
            parts = [self.take().text]
            while self.peek().text == ".":
                self.take(".")
                parts.append(self.take(kind="ident").text)
            name = ".".join(parts)
            if self.peek().text == "(":
                self.take("(")
                args = []
                while self.peek().text != ")":
                    args.append(self.expression())
                    if self.peek().text != ")":
                        self.take(",")
                self.take(")")
                return Call(name, tuple(args))
            return Ref(name)
        raise ParseError(f"line {tok.line}: unexpected {tok.text or tok.kind!r} in an expression")

    def array(self) -> list[Any]:
        self.take("[")
        items = []
        while self.peek().text != "]":
            items.append(self.expression())
            if self.peek().text != "]":
                self.take(",")
        self.take("]")
        return items

    def object(self) -> dict[str, Any]:
        self.take("{")
        out: dict[str, Any] = {}
        while self.peek().text != "}":
            key_tok = self.take()
            if key_tok.kind == "string":
                key = _unquote(key_tok.text, key_tok.line)
            elif key_tok.kind == "ident":
                key = key_tok.text
            else:
                raise ParseError(f"line {key_tok.line}: object key expected, found {key_tok.text!r}")
            self.take("=")
            out[key] = self.expression()
            if self.peek().text != "}":
                self.take(",")
        self.take("}")
        return out


def parse(text: str) -> Block:
    """The whole file as a root block whose children are the components."""
    root = Block("<file>", None, 0)
    _Parser(text).body(root, None)
    if root.attributes:
        raise ParseError(f"attributes outside any block: {sorted(root.attributes)}")
    return root


def parse_file(path: Path) -> Block:
    return parse(path.read_text(encoding="utf-8"))


# ------------------------------------------------------- the log pipeline
_SELECTOR = re.compile(r'^\{\s*(\w+)\s*=\s*"([^"]*)"\s*\}$')


@dataclass(frozen=True)
class Produced:
    """What the pipeline gives the lines of one namespace."""

    stream_labels: frozenset[str]
    structured_metadata: frozenset[str]
    json_fields: frozenset[str]  # keys read from the line by stage.json
    timestamp: tuple[str, str] | None  # (extracted field, format)


class LogPipeline:
    """The components of a config by id, and what their wiring does."""

    def __init__(self, root: Block) -> None:
        self.root = root
        self.components: dict[str, Block] = {}
        for block in root.blocks:
            if block.id in self.components:
                raise ParseError(f"line {block.line}: component {block.id} defined twice")
            self.components[block.id] = block

    @classmethod
    def from_file(cls, path: Path) -> "LogPipeline":
        return cls(parse_file(path))

    def of_kind(self, name: str) -> list[Block]:
        return [b for b in self.root.blocks if b.name == name]

    def component_of(self, ref: Any, exports: tuple[str, ...]) -> Block:
        """The component a reference such as loki.process.pods.receiver
        names; its last part must be one of `exports`."""
        if not isinstance(ref, Ref) or ref.path.rsplit(".", 1)[-1] not in exports:
            raise ValueError(f"{ref!r} is not a reference to a component's {' or '.join(exports)}")
        component = ref.path.rsplit(".", 1)[0]
        if component not in self.components:
            raise ValueError(f"{ref.path} names no component of this file")
        return self.components[component]

    def targets_chain(self, source: Block) -> list[Block]:
        """The discovery components that feed a source, nearest first."""
        chain, current = [], source
        while "targets" in current.attributes:
            current = self.component_of(current.attributes["targets"], ("output", "targets"))
            chain.append(current)
        return chain

    def forward_chain(self, source: Block) -> list[Block]:
        """The components a source's lines pass through, ending with a writer.
        Each component here forwards to exactly one receiver."""
        chain, current = [], source
        while "forward_to" in current.attributes:
            receivers = current.attributes["forward_to"]
            if not isinstance(receivers, list) or len(receivers) != 1:
                raise ValueError(f"{current.id}: forward_to must name one receiver, found {receivers!r}")
            current = self.component_of(receivers[0], ("receiver",))
            chain.append(current)
        return chain

    def trace_chain(self, receiver: Block) -> list[Block]:
        """The components a receiver's traces pass through, ending with an
        exporter (a component with no `output` block). Each component here
        sends its traces to exactly one next component, and only traces."""
        chain, current = [], receiver
        while current.children("output"):
            (output,) = current.children("output")
            if set(output.attributes) != {"traces"}:
                raise ValueError(f"{current.id}: output must send traces only, found {sorted(output.attributes)}")
            targets = output.attributes["traces"]
            if not isinstance(targets, list) or len(targets) != 1:
                raise ValueError(f"{current.id}: output.traces must name one component, found {targets!r}")
            current = self.component_of(targets[0], ("input",))
            chain.append(current)
        return chain

    def discovered_namespaces(self, source: Block) -> set[str]:
        names: set[str] = set()
        for block in self.targets_chain(source):
            if block.name == "discovery.kubernetes":
                for ns in block.children("namespaces"):
                    names.update(ns.attributes.get("names", []))
        return names

    def relabel_labels(self, source: Block) -> set[str]:
        """Labels the discovery.relabel rules of a source's chain set (and
        do not drop again); meta labels (__*) never reach Loki."""
        labels: set[str] = set()
        for block in reversed(self.targets_chain(source)):
            if block.name != "discovery.relabel":
                continue
            for rule in block.children("rule"):
                action = rule.attributes.get("action", "replace")
                if action == "replace" and "target_label" in rule.attributes:
                    labels.add(rule.attributes["target_label"])
                elif action == "labeldrop":
                    labels = {l for l in labels if not re.fullmatch(rule.attributes["regex"], l)}
                elif action == "labelkeep":
                    labels = {l for l in labels if re.fullmatch(rule.attributes["regex"], l)}
        return {l for l in labels if not l.startswith("__")}

    def produced(self, source: Block, namespace: str) -> Produced:
        """Stream labels, structured metadata and JSON fields the lines of
        `namespace` leave the pipeline with, following stage.match blocks
        whose selector is a plain {label="value"} on the labels so far."""
        labels = self.relabel_labels(source)
        state = {"labels": labels, "metadata": set(), "json": set(), "timestamp": None}
        known = {"namespace": namespace}
        for block in self.forward_chain(source):
            if block.name == "loki.process":
                self._stages(block, state, known)
        return Produced(
            frozenset(state["labels"]),
            frozenset(state["metadata"]),
            frozenset(state["json"]),
            state["timestamp"],
        )

    def _stages(self, block: Block, state: dict, known: dict[str, str]) -> None:
        for stage in block.blocks:
            if stage.name == "stage.match":
                match = _SELECTOR.match(stage.attributes.get("selector", "").strip())
                if not match:
                    raise ValueError(f"line {stage.line}: only {{label=\"value\"}} selectors are read here")
                if stage.attributes.get("action", "keep") != "keep":
                    raise ValueError(f"line {stage.line}: only keep matches are read here")
                if known.get(match.group(1)) == match.group(2):
                    self._stages(stage, state, known)
            elif stage.name == "stage.json":
                if stage.attributes.get("source"):
                    raise ValueError(f"line {stage.line}: stage.json reads the line only here")
                for key, expression in stage.attributes.get("expressions", {}).items():
                    state["json"].add(expression or key)
            elif stage.name == "stage.labels":
                state["labels"] |= set(stage.attributes.get("values", {}))
            elif stage.name == "stage.static_labels":
                state["labels"] |= set(stage.attributes.get("values", {}))
            elif stage.name == "stage.label_drop":
                state["labels"] -= set(stage.attributes.get("values", []))
            elif stage.name == "stage.label_keep":
                state["labels"] &= set(stage.attributes.get("values", []))
            elif stage.name == "stage.structured_metadata":
                moved = set(stage.attributes.get("values", {}))
                # Alloy moves a key that is also a label out of the labels.
                state["metadata"] |= moved
                state["labels"] -= moved
            elif stage.name == "stage.timestamp":
                state["timestamp"] = (stage.attributes["source"], stage.attributes["format"])
            else:
                raise ValueError(f"line {stage.line}: {stage.name} is not read here; teach LogPipeline")
