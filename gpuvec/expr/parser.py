"""Parser of the filter language: tokens → syntax tree (:mod:`gpuvec.expr.nodes`).

A precedence-climbing parser with the operator precedence of Milvus's ``Plan.g4``, from
loosest to tightest: ``or``/``||``, ``and``/``&&``, ``== !=``, ``< <= > >=`` (and ranges
such as ``10 <= a < 25``), ``in``/``not in``, ``+ -``, ``* / %``, unary ``- + not !``,
``**``, ``like``, then ``exists`` and primaries. As in Milvus, ``not`` binds tighter than
comparisons: ``not a == 1`` means ``(not a) == 1`` (write ``not (a == 1)``).

Template placeholders ``{name}`` are replaced by the *value* of ``params[name]`` as a
literal node (never by text substitution); values Milvus's template protobuf could not
carry (integers beyond int64, strings that are not valid UTF-8) are refused. Trees deeper
than ``MAX_DEPTH`` are refused with a FilterError before any recursion could overflow the
stack. The integer literal ``9223372036854775808`` is only valid negated (INT64_MIN).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gpuvec.expr import nodes as n
from gpuvec.expr.arith import INT64_MAX
from gpuvec.expr.errors import MAX_DEPTH, FilterError, error_at, find_surrogate, show_int
from gpuvec.expr.lexer import (
    DIGITS,
    EOF,
    FLOAT,
    INT,
    META,
    NAME,
    OP,
    STR,
    Token,
    tokenize,
)

AND_WORDS, OR_WORDS = frozenset({"and", "AND"}), frozenset({"or", "OR"})
NOT_WORDS, IN_WORDS = frozenset({"not", "NOT"}), frozenset({"in", "IN"})
LIKE_WORDS, EXISTS_WORDS = frozenset({"like", "LIKE"}), frozenset({"exists", "EXISTS"})
BOOL_WORDS = {"true": True, "True": True, "TRUE": True}
BOOL_WORDS |= {"false": False, "False": False, "FALSE": False}
_KEYWORDS = AND_WORDS | OR_WORDS | NOT_WORDS | IN_WORDS | LIKE_WORDS | EXISTS_WORDS

OR_BP, AND_BP, EQ_BP, REL_BP, IN_BP, ADD_BP, MUL_BP = 10, 20, 40, 50, 60, 70, 80
UNARY_BP, POW_BP, LIKE_BP, EXISTS_BP = 90, 100, 110, 120
_REL = ("<", "<=", ">", ">=")
_UNSUPPORTED = {
    "&": "bitwise operators are not supported",
    "|": "bitwise operators are not supported",
    "^": "bitwise operators are not supported",
    "~": "bitwise operators are not supported",
    "<<": "shift operators are not supported",
    ">>": "shift operators are not supported",
    "=~": "regular-expression matching is not supported",
    "!~": "regular-expression matching is not supported",
    "=": "'=' is not an operator; use '==' to compare",
}


def parse(text: str, params: Mapping[str, Any] | None = None) -> n.Node:
    """Parse filter text into a syntax tree; FilterError on any syntax problem."""
    return _Parser(text, params or {}).parse()


def template_value(
    name: str, value: Any, *, text: str, tok_pos: int, tok_end: int, level: int = 0
) -> Any:
    """A filter_params value as a literal: bool, int, float, str or a list of them."""
    if level > MAX_DEPTH:
        raise error_at(text, tok_pos, tok_end, f"template value {{{name}}} is nested too deeply")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise error_at(
                text, tok_pos, tok_end, f"template value {{{name}}} holds the integer "
                f"{show_int(value)}, out of the int64 range"
            )  # fmt: skip
        return value
    if isinstance(value, str):
        bad = find_surrogate(value)
        if bad is not None:
            raise error_at(
                text, tok_pos, tok_end, f"template value {{{name}}} holds a string with a lone "
                f"surrogate (U+{ord(value[bad]):04X} at index {bad}), which is not valid UTF-8"
            )  # fmt: skip
        return value
    if isinstance(value, list | tuple):
        kw = {"text": text, "tok_pos": tok_pos, "tok_end": tok_end, "level": level + 1}
        return [template_value(name, v, **kw) for v in value]
    what = "null" if value is None else type(value).__name__
    raise error_at(
        text, tok_pos, tok_end, f"template value {{{name}}} must be a bool, number, string or "
        f"list of them, got {what}"
    )  # fmt: skip


class _Parser:
    def __init__(self, text: str, params: Mapping[str, Any]) -> None:
        self.text = text
        self.params = params
        self.toks = tokenize(text)
        self.i = 0
        self.nesting = 0

    # -- token helpers ----------------------------------------------------------------
    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def fail(self, tok: Token, reason: str) -> FilterError:
        return error_at(self.text, tok.pos, tok.end if tok.kind != EOF else None, reason)

    def expect(self, op: str, what: str) -> Token:
        tok = self.next()
        if tok.kind != OP or tok.text != op:
            found = "the end of the filter" if tok.kind == EOF else repr(tok.text)
            raise self.fail(tok, f"expected {what}, found {found}")
        return tok

    def enter(self, tok: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.fail(tok, f"the filter is nested too deeply (more than {MAX_DEPTH} levels)")

    def check_depth(self, node: n.Node) -> n.Node:
        if node.depth > MAX_DEPTH:
            raise error_at(
                self.text, node.pos, node.pos + 1,
                f"the filter is nested too deeply (more than {MAX_DEPTH} levels)",
            )  # fmt: skip
        return node

    # -- grammar ----------------------------------------------------------------------
    def parse(self) -> n.Node:
        node = self.expr(0)
        tok = self.peek()
        if tok.kind != EOF:
            raise self.fail(tok, f"unexpected {tok.text!r} after a complete expression")
        return node

    def expr(self, min_bp: int) -> n.Node:
        self.enter(self.peek())
        left = self.prefix()
        while True:
            tok = self.peek()
            bp = self.infix_bp(tok)
            if bp is None or bp <= min_bp:
                break
            left = self.check_depth(self.infix(left, tok, bp))
        self.nesting -= 1
        return left

    def infix_bp(self, tok: Token) -> int | None:
        if tok.kind == OP:
            t = tok.text
            if t in _UNSUPPORTED:
                raise self.fail(tok, _UNSUPPORTED[t])
            bps = {"||": OR_BP, "&&": AND_BP, "==": EQ_BP, "!=": EQ_BP, "+": ADD_BP}
            bps |= {"-": ADD_BP, "*": MUL_BP, "/": MUL_BP, "%": MUL_BP, "**": POW_BP}
            return REL_BP if t in _REL else bps.get(t)
        if tok.kind != NAME:
            return None
        if tok.text in OR_WORDS:
            return OR_BP
        if tok.text in AND_WORDS:
            return AND_BP
        if tok.text in IN_WORDS:
            return IN_BP
        if tok.text in NOT_WORDS and self.peek(1).kind == NAME and self.peek(1).text in IN_WORDS:
            return IN_BP
        if tok.text in LIKE_WORDS:
            return LIKE_BP
        if tok.text.lower() == "is":
            raise self.fail(tok, "'is null' / 'is not null' must follow a field name")
        return None

    def infix(self, left: n.Node, tok: Token, bp: int) -> n.Node:
        self.next()
        t = tok.text
        if bp in (OR_BP, AND_BP):
            return self.logical(left, "or" if bp == OR_BP else "and", bp)
        if bp == IN_BP:
            negate = t in NOT_WORDS
            if negate:
                self.next()  # the IN word
            right = self.expr(bp)
            return n.InList(left.pos, right.end, left, right, negate, depth=_d(left, right))
        if bp == LIKE_BP:
            right = self.expr(bp)
            return n.Like(left.pos, right.end, left, right, depth=_d(left, right))
        right = self.expr(bp)
        if bp == EQ_BP:
            return n.Compare(left.pos, right.end, t, left, right, depth=_d(left, right))
        if bp == REL_BP:
            nxt = self.peek()
            if nxt.kind == OP and nxt.text in _REL:
                return self.range(left, t, right, nxt)
            return n.Compare(left.pos, right.end, t, left, right, depth=_d(left, right))
        return n.Binary(left.pos, right.end, t, left, right, depth=_d(left, right))

    def logical(self, left: n.Node, op: str, bp: int) -> n.Node:
        """A flat chain ``left op b op c ...`` (the first operator already consumed), read
        in one loop: linear in the number of terms, however long the chain."""
        items = list(left.items) if isinstance(left, n.Logical) and left.op == op else [left]
        depth = max(x.depth for x in items)
        while True:
            right = self.expr(bp)
            items.append(right)
            depth = max(depth, right.depth)
            if self.infix_bp(self.peek()) != bp:
                break
            self.next()
        return n.Logical(left.pos, right.end, op, tuple(items), depth=depth + 1)

    def range(self, lower: n.Node, op1: str, target: n.Node, tok2: Token) -> n.Node:
        op2 = tok2.text
        if (op1[0] == "<") != (op2[0] == "<"):
            raise self.fail(
                tok2, "a chained comparison must be a range such as 1 < x <= 5 or 5 > x >= 1 "
                "(both operators pointing the same way)"
            )  # fmt: skip
        if not isinstance(target, n.FieldRef):
            raise error_at(
                self.text, target.pos, target.end,
                "the middle of a range comparison must be a field",
            )  # fmt: skip
        self.next()
        upper = self.expr(REL_BP)
        nxt = self.peek()
        if nxt.kind == OP and nxt.text in _REL:
            raise self.fail(nxt, "a range comparison has exactly two operators")
        depth = 1 + max(lower.depth, target.depth, upper.depth)
        return n.RangeCmp(lower.pos, upper.end, lower, op1, target, op2, upper, depth=depth)

    def prefix(self) -> n.Node:
        tok = self.next()
        if tok.kind == INT and not (isinstance(tok.value, int) and tok.value <= INT64_MAX):
            raise self.fail(tok, "integer literal out of the int64 range "
                            "[-9223372036854775808, 9223372036854775807]")  # fmt: skip
        if tok.kind in (INT, FLOAT, STR):
            return n.Literal(tok.pos, tok.end, tok.value)
        if tok.kind == META:
            return self.field(tok)
        if tok.kind == OP:
            return self.prefix_op(tok)
        if tok.kind == NAME:
            if tok.text in BOOL_WORDS:
                return n.Literal(tok.pos, tok.end, BOOL_WORDS[tok.text])
            if tok.text in NOT_WORDS:
                return self.unary(tok, "not", UNARY_BP)
            if tok.text in EXISTS_WORDS:
                operand = self.expr(EXISTS_BP)
                return n.Exists(tok.pos, operand.end, operand, depth=operand.depth + 1)
            nxt = self.peek()
            if nxt.kind == OP and nxt.text == "(":
                return self.call(tok)
            if tok.text in _KEYWORDS:
                raise self.fail(tok, f"unexpected keyword {tok.text!r}")
            return self.field(tok)
        found = "the end of the filter" if tok.kind == EOF else repr(tok.text)
        raise self.fail(tok, f"expected an expression, found {found}")

    def prefix_op(self, tok: Token) -> n.Node:
        t = tok.text
        if t == "(":
            inner = self.expr(0)
            close = self.expect(")", "')'")
            return _respan(inner, tok.pos, close.end)
        if t == "[":
            return self.list_expr(tok)
        if t == "{":
            return self.template(tok)
        if t in ("-", "+"):
            return self.unary(tok, t, UNARY_BP)
        if t == "!":
            return self.unary(tok, "not", UNARY_BP)
        if t in _UNSUPPORTED:
            raise self.fail(tok, _UNSUPPORTED[t])
        raise self.fail(tok, f"expected an expression, found {t!r}")

    def unary(self, tok: Token, op: str, bp: int) -> n.Node:
        lit, after = self.peek(), self.peek(1)
        powered = after.kind == OP and after.text == "**"  # '**' binds tighter than '-'
        if op == "-" and lit.kind == INT and lit.value == INT64_MAX + 1 and not powered:
            self.next()  # -9223372036854775808: the one literal valid only when negated
            return n.Literal(tok.pos, lit.end, -INT64_MAX - 1)
        operand = self.expr(bp)
        return n.Unary(tok.pos, operand.end, op, operand, depth=operand.depth + 1)

    def list_expr(self, open_tok: Token) -> n.Node:
        self.enter(open_tok)
        items: list[n.Node] = []
        while not (self.peek().kind == OP and self.peek().text == "]"):
            items.append(self.expr(0))
            if self.peek().kind == OP and self.peek().text == ",":
                self.next()
                continue
            break
        close = self.expect("]", "',' or ']' in a list")
        self.nesting -= 1
        depth = 1 + max((x.depth for x in items), default=0)
        return n.ListExpr(open_tok.pos, close.end, tuple(items), depth=depth)

    def template(self, open_tok: Token) -> n.Node:
        name = self.next()
        if name.kind != NAME:
            raise self.fail(name, "expected a template variable name after '{'")
        close = self.expect("}", "'}' closing the template variable")
        if name.text not in self.params:
            raise error_at(
                self.text, open_tok.pos, close.end,
                f"template variable {{{name.text}}} has no value in filter_params",
            )  # fmt: skip
        value = template_value(
            name.text, self.params[name.text], text=self.text, tok_pos=open_tok.pos,
            tok_end=close.end,
        )  # fmt: skip
        return n.Literal(open_tok.pos, close.end, value, depth=1 + _list_depth(value))

    def call(self, name: Token) -> n.Node:
        open_tok = self.next()
        self.enter(open_tok)
        args: list[n.Node] = []
        while not (self.peek().kind == OP and self.peek().text == ")"):
            args.append(self.expr(0))
            if self.peek().kind == OP and self.peek().text == ",":
                self.next()
                continue
            break
        close = self.expect(")", "',' or ')' in the argument list")
        self.nesting -= 1
        depth = 1 + max((x.depth for x in args), default=0)
        return n.Call(name.pos, close.end, name.text, tuple(args), name.end, depth=depth)

    def field(self, tok: Token) -> n.Node:
        path: list[str | int] = []
        end = tok.end
        while self.peek().kind == OP and self.peek().text == "[":
            self.next()
            key = self.next()
            if key.kind == STR and isinstance(key.value, str):
                if not key.value:
                    raise self.fail(key, "a JSON key cannot be empty")
                path.append(key.value)
            elif key.kind == INT and _decimal(key.text):
                if key.value is None:
                    raise self.fail(key, "the subscript index is too long")
                path.append(key.value)  # any size: Milvus reads it as a JSON key
            else:
                raise self.fail(
                    key, "a subscript must be a quoted JSON key or a non-negative integer index"
                )
            end = self.expect("]", "']' closing the subscript").end
        ref = n.FieldRef(tok.pos, end, tok.text, tuple(path), tok.end)
        nxt = self.peek()
        if nxt.kind == NAME and nxt.text.lower() == "is":
            return self.is_null(ref)
        return ref

    def is_null(self, ref: n.FieldRef) -> n.Node:
        self.next()
        word = self.next()
        negate = word.kind == NAME and word.text.lower() == "not"
        if negate:
            word = self.next()
        if word.kind != NAME or word.text.lower() != "null":
            raise self.fail(word, "expected 'null' or 'not null' after 'is'")
        return n.IsNull(ref.pos, word.end, ref, negate, depth=2)


def _decimal(text: str) -> bool:
    """Whether ``text`` is plain ASCII decimal digits (an array index such as ``[3]``)."""
    return bool(text) and all(c in DIGITS for c in text)


def _d(*children: n.Node) -> int:
    return 1 + max(c.depth for c in children)


def _list_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_list_depth(v) for v in value), default=0)
    return 0


def _respan(node: n.Node, pos: int, end: int) -> n.Node:
    """The node with its span widened to include enclosing parentheses."""
    fields = {f: getattr(node, f) for f in node.__dataclass_fields__}
    fields.update(pos=pos, end=end)
    return type(node)(**fields)
