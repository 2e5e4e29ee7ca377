#!/usr/bin/env python3
"""Generate the inputs/outputs section of each Terraform module's README.md.

Reads every ``*.tf`` file of a module (not its tests), finds the ``variable``, ``output``,
``resource``, ``data`` and ``terraform`` blocks with a small HCL tokenizer (strings, template
interpolations, heredocs, comments and nested brackets are understood; expressions are kept
as source text, never evaluated) and rewrites the part of README.md between
``<!-- BEGIN_TF_DOCS -->`` and ``<!-- END_TF_DOCS -->``.

    python modules/docs.py            # rewrite every modules/*/README.md
    python modules/docs.py --check    # exit 1 and name the READMEs that are out of date
    python modules/docs.py modules/network

Standard library only, so it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

BEGIN = "<!-- BEGIN_TF_DOCS -->"
END = "<!-- END_TF_DOCS -->"
MODULES_DIR = Path(__file__).resolve().parent

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_HEREDOC = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_]*)[ \t]*\n")
_OPEN = {"{": "}", "[": "]", "(": ")"}


class HclError(ValueError):
    """The file is not HCL this parser understands."""


@dataclass
class Block:
    kind: str
    labels: list[str]
    attributes: dict[str, str] = field(default_factory=dict)  # name -> expression source
    blocks: list[Block] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Scanning: each helper takes the text and a position and returns the position after the
# construct, so the parser never mistakes a brace inside a string or comment for structure.
# --------------------------------------------------------------------------------------


def _skip_comment(text: str, pos: int) -> int | None:
    """Position after the comment starting at pos, or None when there is none."""
    if text.startswith("#", pos) or text.startswith("//", pos):
        end = text.find("\n", pos)
        return len(text) if end < 0 else end
    if text.startswith("/*", pos):
        end = text.find("*/", pos + 2)
        if end < 0:
            raise HclError("unterminated /* comment")
        return end + 2
    return None


def _skip_string(text: str, pos: int) -> int:
    """pos is at an opening quote; return the position after the closing quote."""
    i = pos + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if text.startswith("$${", i) or text.startswith("%%{", i):  # escaped, literal text
            i += 3
            continue
        if text.startswith("${", i) or text.startswith("%{", i):
            i = _skip_balanced(text, i + 1)
            continue
        if c == "\n":
            raise HclError(f"newline in string starting at offset {pos}")
        i += 1
    raise HclError(f"unterminated string starting at offset {pos}")


def _skip_heredoc(text: str, pos: int) -> int | None:
    match = _HEREDOC.match(text, pos)
    if not match:
        return None
    marker = match.group(2)
    end = re.compile(rf"^[ \t]*{re.escape(marker)}[ \t]*$", re.M).search(text, match.end())
    if not end:
        raise HclError(f"unterminated heredoc {marker}")
    return end.end()


def _skip_balanced(text: str, pos: int) -> int:
    """pos is at an opening bracket; return the position after its matching close."""
    closer = _OPEN[text[pos]]
    i = pos + 1
    while i < len(text):
        c = text[i]
        skipped = _skip_comment(text, i)
        if skipped is not None:
            i = skipped
        elif c == '"':
            i = _skip_string(text, i)
        elif c == "<" and (heredoc_end := _skip_heredoc(text, i)) is not None:
            i = heredoc_end
        elif c in _OPEN:
            i = _skip_balanced(text, i)
        elif c == closer:
            return i + 1
        elif c in ")]}":
            raise HclError(f"unbalanced {c!r} at offset {i}")
        else:
            i += 1
    raise HclError(f"unclosed {text[pos]!r} at offset {pos}")


def _skip_blank(text: str, pos: int, *, newlines: bool) -> int:
    while pos < len(text):
        if text[pos] in " \t\r" or (newlines and text[pos] == "\n"):
            pos += 1
        elif (skipped := _skip_comment(text, pos)) is not None:
            pos = skipped
        else:
            break
    return pos


def _expression_end(text: str, pos: int) -> int:
    """End of the attribute expression starting at pos: the first newline outside brackets."""
    i = pos
    while i < len(text):
        c = text[i]
        if c == "\n":
            return i
        skipped = _skip_comment(text, i)
        if skipped is not None:
            i = skipped
        elif c == '"':
            i = _skip_string(text, i)
        elif c == "<" and (heredoc_end := _skip_heredoc(text, i)) is not None:
            i = heredoc_end
        elif c in _OPEN:
            i = _skip_balanced(text, i)
        elif c == "}":
            return i  # end of a one-line block body
        else:
            i += 1
    return i


def parse_body(
    text: str, pos: int = 0, end: int | None = None
) -> tuple[dict[str, str], list[Block]]:
    """Attributes and nested blocks of the body text[pos:end]."""
    end = len(text) if end is None else end
    attributes: dict[str, str] = {}
    blocks: list[Block] = []
    while True:
        pos = _skip_blank(text, pos, newlines=True)
        if pos >= end:
            return attributes, blocks
        ident = _IDENT.match(text, pos)
        if not ident:
            raise HclError(
                f"expected an attribute or block at offset {pos}: {text[pos : pos + 30]!r}"
            )
        name = ident.group(0)
        pos = _skip_blank(text, ident.end(), newlines=False)
        if text.startswith("=", pos) and not text.startswith("==", pos):
            start = _skip_blank(text, pos + 1, newlines=False)
            stop = _expression_end(text, start)
            attributes[name] = _strip_trailing_comment(text[start:stop])
            pos = stop
            continue
        labels: list[str] = []
        while text.startswith('"', pos) or _IDENT.match(text, pos):
            if text.startswith('"', pos):
                stop = _skip_string(text, pos)
                labels.append(text[pos + 1 : stop - 1])
            else:
                stop = _IDENT.match(text, pos).end()
                labels.append(text[pos:stop])
            pos = _skip_blank(text, stop, newlines=False)
        if not text.startswith("{", pos):
            raise HclError(f"expected '{{' after {name} at offset {pos}")
        close = _skip_balanced(text, pos)
        inner_attrs, inner_blocks = parse_body(text, pos + 1, close - 1)
        blocks.append(Block(name, labels, inner_attrs, inner_blocks))
        pos = close


def _strip_trailing_comment(source: str) -> str:
    """Drop a comment that ends a one-line expression (comments inside brackets are kept)."""
    i = 0
    while i < len(source):
        c = source[i]
        if c == '"':
            i = _skip_string(source, i)
        elif c == "<" and (heredoc_end := _skip_heredoc(source, i)) is not None:
            i = heredoc_end
        elif c in _OPEN:
            i = _skip_balanced(source, i)
        elif _skip_comment(source, i) is not None:
            return source[:i].rstrip()
        else:
            i += 1
    return source.rstrip()


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------


def string_value(source: str | None) -> str:
    """The text of a literal string or heredoc expression (interpolations are kept as written)."""
    if source is None:
        return ""
    source = source.strip()
    heredoc = _HEREDOC.match(source)
    if heredoc:
        lines = source[heredoc.end() :].split("\n")[:-1]  # the last line is the marker
        if heredoc.group(1):  # <<- strips the common indentation
            indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
            cut = min(indents, default=0)
            lines = [line[cut:] for line in lines]
        return "\n".join(lines).strip()
    if source.startswith('"') and source.endswith('"'):
        body = source[1:-1]
        escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": ""}
        return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), body)
    return source


def _cell(text: str) -> str:
    """Markdown table cell: one line, pipes escaped."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", "<br>")


def _code(source: str) -> str:
    source = source.strip()
    if "\n" not in source:
        return "`" + source.replace("|", "\\|") + "`"
    # Alignment padding from `terraform fmt` ("a    = 1") is noise in a table cell.
    lines = [re.sub(r"(?<=\S) {2,}", " ", line) for line in _dedent(source.split("\n"))]
    return "<pre>" + "<br>".join(_cell(line).replace(" ", "&nbsp;") for line in lines) + "</pre>"


def _dedent(lines: list[str]) -> list[str]:
    """Remove the indentation that continuation lines share (the first line has none)."""
    rest = [line for line in lines[1:] if line.strip()]
    cut = min((len(line) - len(line.lstrip()) for line in rest), default=0)
    return [lines[0]] + [line[cut:] for line in lines[1:]]


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def module_blocks(module: Path) -> list[Block]:
    blocks: list[Block] = []
    for tf in sorted(module.glob("*.tf")):
        try:
            _, file_blocks = parse_body(tf.read_text(encoding="utf-8"))
        except HclError as err:
            raise HclError(f"{tf}: {err}") from err
        blocks.extend(file_blocks)
    return blocks


def _requirements(blocks: list[Block]) -> list[str]:
    rows: list[tuple[str, str]] = []
    for b in (b for b in blocks if b.kind == "terraform"):
        rows.append(("terraform", string_value(b.attributes.get("required_version"))))
        for inner in (i for i in b.blocks if i.kind == "required_providers"):
            for name, source in inner.attributes.items():
                version = re.search(r'version\s*=\s*"([^"]*)"', source)
                rows.append((name, version.group(1) if version else "any"))
    if not rows:
        return []
    lines = ["## Requirements", "", "| Name | Version |", "|------|---------|"]
    return [*lines, *(f"| {name} | `{version}` |" for name, version in rows), ""]


def _resources(blocks: list[Block]) -> list[str]:
    names = sorted(
        ("data." if b.kind == "data" else "") + ".".join(b.labels)
        for b in blocks
        if b.kind in ("resource", "data") and len(b.labels) == 2
    )
    if not names:
        return []
    rows = [f"| `{n}` | {'data source' if n.startswith('data.') else 'resource'} |" for n in names]
    return ["## Resources", "", "| Name | Kind |", "|------|------|", *rows, ""]


def _inputs(blocks: list[Block]) -> list[str]:
    lines = ["## Inputs", ""]
    variables = [b for b in blocks if b.kind == "variable"]
    if not variables:
        return [*lines, "No inputs.", ""]
    lines += [
        "| Name | Description | Type | Default | Required |",
        "|------|-------------|------|---------|:--------:|",
    ]
    for v in variables:
        description = _cell(string_value(v.attributes.get("description")))
        type_ = _code(v.attributes.get("type", "any"))
        default = v.attributes.get("default")
        shown = "n/a" if default is None else _code(default)
        required = "yes" if default is None else "no"
        lines.append(f"| `{v.labels[0]}` | {description} | {type_} | {shown} | {required} |")
    return [*lines, ""]


def _outputs(blocks: list[Block]) -> list[str]:
    lines = ["## Outputs", ""]
    outputs = [b for b in blocks if b.kind == "output"]
    if not outputs:
        return [*lines, "No outputs."]
    lines += ["| Name | Description | Sensitive |", "|------|-------------|:---------:|"]
    for o in outputs:
        description = _cell(string_value(o.attributes.get("description")))
        sensitive = "yes" if o.attributes.get("sensitive", "").strip() == "true" else "no"
        lines.append(f"| `{o.labels[0]}` | {description} | {sensitive} |")
    return lines


def render(module: Path) -> str:
    """The generated Markdown of one module."""
    blocks = module_blocks(module)
    sections = [*_requirements(blocks), *_resources(blocks), *_inputs(blocks), *_outputs(blocks)]
    return "\n".join(sections).rstrip() + "\n"


def updated_readme(module: Path) -> tuple[Path, str, str]:
    """The README path, its current text and the text it should have."""
    readme = module / "README.md"
    current = readme.read_text(encoding="utf-8") if readme.exists() else ""
    section = f"{BEGIN}\n{render(module)}{END}"
    if BEGIN in current and END in current:
        head, _, rest = current.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return readme, current, head + section + tail
    base = current.rstrip() + "\n\n" if current.strip() else f"# {module.name}\n\n"
    return readme, current, base + section + "\n"


def find_modules(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p).resolve() for p in paths]
    return sorted(p.parent for p in MODULES_DIR.glob("*/variables.tf"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "modules", nargs="*", help="module folders (default: all with variables.tf)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a README is out of date")
    args = parser.parse_args(argv)

    stale: list[Path] = []
    for module in find_modules(args.modules):
        readme, current, wanted = updated_readme(module)
        if current == wanted:
            continue
        stale.append(readme)
        if not args.check:
            readme.write_text(wanted, encoding="utf-8")
            print(f"updated {readme}")
    if args.check and stale:
        for readme in stale:
            print(f"out of date: {readme} (run: python modules/docs.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
