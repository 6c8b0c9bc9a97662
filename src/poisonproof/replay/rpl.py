"""Deckard/testbound `.rpl` scenario files in, typed frozen values out.

Owns: the `.rpl` syntax — the config header (ordered `key: value` pairs before
`CONFIG_END`), `SCENARIO_BEGIN`, `RANGE_BEGIN`/`ADDRESS`/`RANGE_END`, `STEP n TYPE`,
`ENTRY_BEGIN`…`ENTRY_END` with `MATCH`, `ADJUST`, `REPLY`/`FLAGS`, `MANDATORY`, `TSIG`,
`SECTION …` records (parsed with dnspython: default TTL 3600, class IN, origin `.`,
`$ORIGIN`/`$TTL` honoured) and `RAW` hex, and reporting every problem as `file:line: what`.
Must never: decide what a MATCH means or build a DNS reply (that is
`poisonproof.replay.match`), open a socket, or read anything but the one `.rpl` file.

The format is described in Deckard's `doc/scenario_guide.rst`; this is our own reader.
"""

from __future__ import annotations

import binascii
import calendar
import ipaddress
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import dns.dnssectypes
import dns.exception
import dns.flags
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tokenizer
import dns.ttl

DEFAULT_TTL = 3600
"""The TTL of a record written without one (testbound and Deckard use 3600)."""

SECTIONS = ("question", "answer", "authority", "additional")
"""Section names as `Entry.sections` and `SECTION` lines use them (lower-cased)."""

MATCH_WORDS = frozenset(
    [
        "opcode",
        "qtype",
        "qname",
        "qcase",
        "subdomain",
        "flags",
        "rcode",
        "question",
        "answer",
        "authority",
        "additional",
        "all",
        "ttl",
        "tcp",
        "udp",
        "answertypes",
        "answerrrsigs",
        "edns",
    ]
)
"""MATCH elements we understand (Deckard's lens and matchpart, plus testbound's ttl/UDP)."""

ADJUST_WORDS = frozenset({"copy_id", "copy_query", "raw_id", "do_not_answer"})
"""ADJUST elements we understand."""

_HEADER_FLAGS = ("QR", "AA", "TC", "RD", "RA", "AD", "CD")
_TRUE_WORDS = frozenset({"yes", "true", "on", "1"})
_FALSE_WORDS = frozenset({"no", "false", "off", "0"})


class RplError(ValueError):
    """A scenario that cannot be read; the message is `file:line: what is wrong`."""

    def __init__(self, path: str, line: int, what: str) -> None:
        super().__init__(f"{path}:{line}: {what}")
        self.path = path
        self.line = line
        self.what = what


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Record:
    """One resource record (or, in the QUESTION section, one question) of an entry."""

    name: dns.name.Name
    ttl: int
    rdclass: dns.rdataclass.RdataClass
    rdtype: dns.rdatatype.RdataType
    rdata: dns.rdata.Rdata | None
    """None only for questions."""
    line: int

    def to_rrset(self) -> dns.rrset.RRset:
        """A fresh one-record RRset (an empty one for a question)."""
        rrset = dns.rrset.RRset(self.name, self.rdclass, self.rdtype)
        if self.rdata is not None:
            rrset.add(self.rdata, self.ttl)
        return rrset

    def to_text(self) -> str:
        if self.rdata is None:
            return f"{self.name} {self.rdclass.name} {self.rdtype.name}"
        return f"{self.name} {self.ttl} {self.rdclass.name} {self.rdtype.name} {self.rdata}"


@dataclass(frozen=True)
class Tsig:
    """A `TSIG keyname secret` line: sign the message with this HMAC key."""

    keyname: str
    secret: str


@dataclass(frozen=True)
class Entry:
    """One `ENTRY_BEGIN … ENTRY_END` block: a query to send, an answer template or an
    expected answer, depending on where it sits (see `poisonproof.replay.match`)."""

    line: int
    """Line of `ENTRY_BEGIN`."""
    match: frozenset[str] = frozenset()
    """MATCH elements as written (lower-cased; `all`/`question` not expanded)."""
    has_match_line: bool = False
    adjust: frozenset[str] = frozenset()
    reply_words: tuple[str, ...] = ()
    """Every word of the REPLY/FLAGS lines, upper-cased, in order."""
    opcode: dns.opcode.Opcode = dns.opcode.Opcode.QUERY
    rcode: dns.rcode.Rcode = dns.rcode.Rcode.NOERROR
    flags: int = 0
    """Header flag bits (QR AA TC RD RA AD CD) from the REPLY line."""
    dnssec_ok: bool = False
    """`DO` on the REPLY line (EDNS header flag)."""
    question: tuple[Record, ...] = ()
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    sections: frozenset[str] = frozenset()
    """Sections that have a `SECTION` line, even an empty one."""
    raw: bytes | None = None
    mandatory: bool = False
    tsig: Tsig | None = None

    @property
    def match_fields(self) -> frozenset[str]:
        """MATCH elements expanded as Deckard does: `all` is opcode qtype qname flags rcode
        answer authority additional (every section, written or not), `question` is qtype
        qname. An entry without a MATCH line matches everything, as in testbound (Deckard
        would crash on it; iter_cycle.rpl has such a catch-all SERVFAIL server)."""
        words = set(self.match)
        if "all" in words:
            words.discard("all")
            words |= {"opcode", "qtype", "qname", "flags", "rcode"}
            words |= {"answer", "authority", "additional"}
        if "question" in words:
            words.discard("question")
            words |= {"qtype", "qname"}
        return frozenset(words)

    def section(self, name: str) -> tuple[Record, ...]:
        """The records of section `name` (one of `SECTIONS`)."""
        if name not in SECTIONS:
            raise KeyError(name)
        records: tuple[Record, ...] = getattr(self, name)
        return records


class StepKind(StrEnum):
    """`STEP n KIND`: what the step does (testbound's names)."""

    QUERY = "QUERY"
    CHECK_ANSWER = "CHECK_ANSWER"
    CHECK_OUT_QUERY = "CHECK_OUT_QUERY"
    REPLY = "REPLY"
    TIME_PASSES = "TIME_PASSES"
    TIMEOUT = "TIMEOUT"
    TRAFFIC = "TRAFFIC"
    NOTHING = "NOTHING"


_BLOCK_KEYWORDS = frozenset(
    {"ENTRY_BEGIN", "RANGE_BEGIN", "RANGE_END", "STEP", "SCENARIO_BEGIN", "SCENARIO_END"}
)

_NEEDS_ENTRY = frozenset(
    {StepKind.QUERY, StepKind.CHECK_ANSWER, StepKind.CHECK_OUT_QUERY, StepKind.REPLY}
)


@dataclass(frozen=True)
class Step:
    """One `STEP` and its entry (if any)."""

    id: int
    kind: StepKind
    line: int
    entry: Entry | None = None
    elapse: float | None = None
    """Seconds for `TIME_PASSES ELAPSE n`."""
    args: tuple[str, ...] = ()
    """Other words after the kind (testbound's `ADDRESS x`, `KEY k`, …)."""


@dataclass(frozen=True)
class Range:
    """`RANGE_BEGIN start end`: answer templates for queries sent during steps start..end
    to the listed addresses (to any address when none is listed)."""

    start: int
    end: int
    line: int
    addresses: tuple[str, ...] = ()
    entries: tuple[Entry, ...] = ()

    def eligible(self, step_id: int, address: str | None) -> bool:
        """Deckard's rule: the step is inside the range, and the address is unknown
        (None), or the range lists no address, or lists this one."""
        if not self.start <= step_id <= self.end:
            return False
        return address is None or not self.addresses or _norm_address(address) in self.addresses


@dataclass(frozen=True)
class ConfigOption:
    """One `key: value` line of the config header."""

    key: str
    value: str
    """Text after the first colon, `#` comment removed, stripped; quotes kept."""
    line: int
    section: str | None = None
    """The value-less clause above it (`server`, `stub-zone`, `forward-zone`), if any."""

    @property
    def text(self) -> str:
        """The value without surrounding quotes."""
        return _unquote(self.value)


@dataclass(frozen=True)
class Config:
    """The config header, kept generically as ordered options, with helpers for the
    keys Deckard knows. Defaults are Deckard's."""

    path: str = "<string>"
    options: tuple[ConfigOption, ...] = ()

    def get(self, key: str) -> str | None:
        """The unquoted value of the last `key` line, or None."""
        found = [option for option in self.options if option.key == key]
        return found[-1].text if found else None

    def get_all(self, key: str) -> tuple[str, ...]:
        return tuple(option.text for option in self.options if option.key == key)

    def flag(self, key: str, default: bool) -> bool:
        """A yes/no option (yes/true/on/1, no/false/off/0; the first word counts, so
        `off ; a remark` is off)."""
        found = [option for option in self.options if option.key == key]
        if not found:
            return default
        option = found[-1]
        words = option.text.split()
        word = _unquote(words[0]).lower() if words else ""
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise RplError(self.path, option.line, f"{key}: expected yes or no, got {option.value!r}")

    @property
    def stub_addr(self) -> str | None:
        """The root server address the resolver primes from."""
        return self.get("stub-addr")

    @property
    def stub_name(self) -> str | None:
        return self.get("stub-name")

    @property
    def query_minimization(self) -> bool:
        return self.flag("query-minimization", True)

    @property
    def harden_glue(self) -> bool:
        return self.flag("harden-glue", True)

    @property
    def do_not_query_localhost(self) -> bool:
        return self.flag("do-not-query-localhost", True)

    @property
    def do_ip4(self) -> bool:
        return self.flag("do-ip4", True)

    @property
    def do_ip6(self) -> bool:
        return self.flag("do-ip6", True)

    @property
    def trust_anchors(self) -> tuple[str, ...]:
        """`trust-anchor` values (zone-file text of a DS or DNSKEY record)."""
        return self.get_all("trust-anchor")

    @property
    def trust_anchor_files(self) -> tuple[str, ...]:
        return self.get_all("trust-anchor-file")

    @property
    def forward_addrs(self) -> tuple[str, ...]:
        return self.get_all("forward-addr")

    @property
    def domain_insecure(self) -> tuple[dns.name.Name, ...]:
        return tuple(dns.name.from_text(value) for value in self.get_all("domain-insecure"))

    @property
    def override_time(self) -> int | None:
        """POSIX time the scenario runs at: `val-override-date` (YYYYMMDDHHMMSS, UTC) or
        `val-override-timestamp` (seconds), the last one written; None when absent."""
        for option in reversed(self.options):
            if option.key not in ("val-override-date", "val-override-timestamp"):
                continue
            value = option.text.strip()
            if not value.isdigit():
                raise RplError(self.path, option.line, f"{option.key}: not a number: {value!r}")
            if option.key == "val-override-date" and len(value) == 14:
                parsed = time.strptime(value, "%Y%m%d%H%M%S")
                return calendar.timegm(parsed)
            return int(value)
        return None

    @property
    def features(self) -> dict[str, str]:
        """`features: a = 1; b = 2` lines merged into one mapping (Deckard's syntax)."""
        result: dict[str, str] = {}
        for value in self.get_all("features"):
            for item in value.split(";"):
                key, _, val = item.partition("=")
                result[key.strip()] = val.strip()
        return result

    @property
    def feature_list(self) -> tuple[tuple[str, str], ...]:
        """`feature-list: key=value` lines, in order."""
        pairs = []
        for value in self.get_all("feature-list"):
            key, _, val = value.partition("=")
            pairs.append((key.strip(), val.strip()))
        return tuple(pairs)

    def trust_anchor_records(self) -> tuple[Record, ...]:
        """The trust anchors parsed as records (origin `.`, default TTL 3600)."""
        records = []
        for option in self.options:
            if option.key != "trust-anchor":
                continue
            try:
                records.append(
                    parse_record(option.text, option.line, question=False, origin=dns.name.root)
                )
            except (ValueError, dns.exception.DNSException) as exc:
                raise RplError(self.path, option.line, f"trust-anchor: {exc}") from None
        return tuple(records)


@dataclass(frozen=True)
class Scenario:
    """A whole `.rpl` file."""

    path: str
    config: Config
    title: str
    ranges: tuple[Range, ...] = ()
    steps: tuple[Step, ...] = ()

    def select_range(self, step_id: int, address: str | None) -> Range | None:
        """Deckard's choice of the range that answers a query sent to `address` during
        `step_id`: an address no range lists counts as unknown (any range), and the first
        eligible range wins even if none of its entries match."""
        known = {a for rng in self.ranges for a in rng.addresses}
        if address is not None and _norm_address(address) not in known:
            address = None
        for rng in self.ranges:
            if rng.eligible(step_id, address):
                return rng
        return None

    @property
    def addresses(self) -> frozenset[str]:
        """Every address a range simulates."""
        return frozenset(a for rng in self.ranges for a in rng.addresses)


# --------------------------------------------------------------------------- reading


def parse_file(path: str | os.PathLike[str]) -> Scenario:
    """Read and parse one `.rpl` file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise RplError(str(source), 0, f"cannot read: {exc.strerror}") from None
    return parse_text(text, str(source))


def parse_text(text: str, path: str = "<string>") -> Scenario:
    """Parse the text of a `.rpl` file; `path` is only used in error messages."""
    return _Parser(text, path).scenario()


def parse_record(
    text: str,
    line: int,
    *,
    question: bool,
    origin: dns.name.Name = dns.name.root,
    default_ttl: int = DEFAULT_TTL,
) -> Record:
    """One record line: `owner [ttl] [class] type rdata`, class and TTL in either order
    (a question has no rdata). Relative names are relative to `origin`. Raises
    ValueError or a dnspython exception; callers add the file and line."""
    tok = dns.tokenizer.Tokenizer(text)
    owner = tok.get()
    if owner.is_eol_or_eof():
        raise ValueError("empty record")
    name = dns.name.from_text(owner.value, origin)
    ttl: int | None = None
    rdclass: dns.rdataclass.RdataClass | None = None
    while True:
        token = tok.get()
        if token.is_eol_or_eof():
            raise ValueError("record has no type")
        word = token.value
        if ttl is None and word[:1].isdigit():
            ttl = dns.ttl.from_text(word)
            continue
        if rdclass is None and _is_class(word):
            after = tok.get()
            tok.unget(after)
            if not after.is_eol_or_eof():
                rdclass = dns.rdataclass.from_text(word)
                continue
        rdtype = dns.rdatatype.from_text(word)
        break
    rdclass = dns.rdataclass.IN if rdclass is None else rdclass
    ttl = default_ttl if ttl is None else ttl
    if question:
        rest = tok.get()
        if not rest.is_eol_or_eof():
            raise ValueError(f"unexpected {rest.value!r} after the question type")
        return Record(name, ttl, rdclass, rdtype, None, line)
    peek = tok.get()
    if peek.is_eol_or_eof():
        raise ValueError(f"{rdtype.name} record has no data")
    tok.unget(peek)
    try:
        rdata = dns.rdata.from_text(rdclass, rdtype, tok, origin, relativize=False)
    except dns.exception.SyntaxError:
        if rdtype not in _DS_TYPES:
            raise
        rdata = _lenient_ds(text, rdclass, rdtype)
    return Record(name, ttl, rdclass, rdtype, rdata, line)


_DS_TYPES = frozenset({dns.rdatatype.DS, dns.rdatatype.CDS, dns.rdatatype.DLV})


def _lenient_ds(text: str, rdclass: int, rdtype: int) -> dns.rdata.Rdata:
    """A DS-like record dnspython refuses (a digest whose length does not fit its digest
    type: scenarios test exactly that) kept as generic rdata with the same wire form."""
    words = text.split()
    kind = dns.rdatatype.to_text(rdtype)
    position = next((i for i, w in enumerate(words) if i > 0 and w.upper() == kind), None)
    if position is None or len(words) < position + 4:
        raise ValueError(f"{kind} record: no key tag, algorithm and digest type after {kind}")
    key_tag, algorithm, digest_type, *digest = words[position + 1 :]
    try:
        wire = struct.pack(
            "!HBB",
            int(key_tag),
            dns.dnssectypes.Algorithm.make(algorithm),
            int(digest_type),
        )
    except struct.error as error:
        raise ValueError(f"{kind} record: {error}") from None
    return dns.rdata.GenericRdata(rdclass, rdtype, wire + binascii.unhexlify("".join(digest)))


def _is_class(word: str) -> bool:
    upper = word.upper()
    return upper in ("IN", "CH", "CHAOS", "HS", "HESIOD", "NONE", "ANY") or (
        upper.startswith("CLASS") and upper[5:].isdigit()
    )


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _norm_address(address: str) -> str:
    try:
        return ipaddress.ip_address(address).compressed
    except ValueError:
        return address


def _strip_comment(text: str, *, semicolon: bool = True) -> str:
    """`text` without its comment: `;` (when `semicolon`) or a `#` that starts a word,
    outside double quotes and not escaped with a backslash."""
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif (char == ";" and semicolon) or (
            char == "#" and (index == 0 or text[index - 1] in " \t")
        ):
            return text[:index]
    return text


def _paren_balance(text: str) -> int:
    depth = 0
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
    return depth


@dataclass
class _EntryDraft:
    """Mutable accumulator for one entry while its lines are read."""

    line: int
    match: set[str] = field(default_factory=set)
    has_match_line: bool = False
    adjust: set[str] = field(default_factory=set)
    reply_words: list[str] = field(default_factory=list)
    records: dict[str, list[Record]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    sections: set[str] = field(default_factory=set)
    raw_hex: list[str] | None = None
    mandatory: bool = False
    tsig: Tsig | None = None


class _Parser:
    """Line cursor plus the parsing state ($ORIGIN, $TTL) of one file."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.index = 0
        self.origin = dns.name.root
        self.default_ttl = DEFAULT_TTL

    # -- cursor

    def error(self, line: int, what: str) -> RplError:
        return RplError(self.path, line, what)

    def next_line(self) -> tuple[int, str] | None:
        """The next non-blank line with its comment removed, as (number, text)."""
        while self.index < len(self.lines):
            self.index += 1
            text = _strip_comment(self.lines[self.index - 1]).strip()
            if text:
                return self.index, text
        return None

    def need_line(self, what: str) -> tuple[int, str]:
        got = self.next_line()
        if got is None:
            raise self.error(len(self.lines), f"unexpected end of file, expected {what}")
        return got

    # -- top level

    def scenario(self) -> Scenario:
        config = self.config()
        number, text = self.need_line("SCENARIO_BEGIN")
        keyword, *rest = text.split(None, 1)
        title = rest[0] if rest else ""
        if keyword != "SCENARIO_BEGIN":
            raise self.error(number, f"expected SCENARIO_BEGIN, got {keyword!r}")
        ranges: list[Range] = []
        steps: list[Step] = []
        seen_steps: dict[int, int] = {}
        while True:
            number, text = self.need_line("SCENARIO_END")
            words = text.split()
            keyword = words[0]
            if keyword == "SCENARIO_END":
                break
            if keyword == "RANGE_BEGIN":
                ranges.append(self.range(number, words))
            elif keyword == "STEP":
                step = self.step(number, words)
                if step.id in seen_steps:
                    raise self.error(
                        number, f"STEP {step.id} already defined on line {seen_steps[step.id]}"
                    )
                seen_steps[step.id] = number
                steps.append(step)
            elif keyword.startswith("$"):
                self.directive(number, words)
            else:
                expected = "RANGE_BEGIN, STEP or SCENARIO_END"
                raise self.error(number, f"expected {expected}, got {text!r}")
        trailing = self.next_line()
        if trailing is not None:
            raise self.error(trailing[0], f"text after SCENARIO_END: {trailing[1]!r}")
        return Scenario(self.path, config, title.strip(), tuple(ranges), tuple(steps))

    def config(self) -> Config:
        """Lines up to CONFIG_END (the header may also be absent)."""
        options: list[ConfigOption] = []
        section: str | None = None
        while self.index < len(self.lines):
            self.index += 1
            number, raw = self.index, self.lines[self.index - 1]
            text = raw.strip()
            if not text or text.startswith(";") or text.startswith("#"):
                continue
            if text.split()[0] == "CONFIG_END":
                return Config(self.path, tuple(options))
            if text.split()[0] == "SCENARIO_BEGIN":
                self.index -= 1
                return Config(self.path, tuple(options))
            text = _strip_comment(text, semicolon=False).strip()
            key, colon, value = text.partition(":")
            if not colon or not key.strip() or " " in key.strip():
                raise self.error(number, f"expected 'key: value' in the config, got {text!r}")
            key, value = key.strip(), value.strip()
            if not value:
                section = key
            options.append(ConfigOption(key, value, number, None if not value else section))
        raise self.error(len(self.lines), "unexpected end of file, expected CONFIG_END")

    def directive(self, number: int, words: list[str]) -> None:
        try:
            if words[0] == "$ORIGIN" and len(words) == 2:
                self.origin = dns.name.from_text(words[1], self.origin)
                return
            if words[0] == "$TTL" and len(words) == 2:
                self.default_ttl = dns.ttl.from_text(words[1])
                return
        except dns.exception.DNSException as exc:
            raise self.error(number, f"{words[0]}: {exc}") from None
        raise self.error(number, f"unsupported directive {' '.join(words)!r}")

    # -- blocks

    def range(self, number: int, words: list[str]) -> Range:
        if len(words) not in (3, 4) or not words[1].isdigit() or not words[2].isdigit():
            raise self.error(number, "expected RANGE_BEGIN start end [address]")
        start, end = int(words[1]), int(words[2])
        if start > end:
            raise self.error(number, f"RANGE_BEGIN {start} {end}: start after end")
        addresses = [self.address(number, words[3])] if len(words) == 4 else []
        entries: list[Entry] = []
        while True:
            line, text = self.need_line("RANGE_END")
            parts = text.split()
            if parts[0] == "RANGE_END":
                break
            if parts[0] == "ADDRESS" and len(parts) == 2:
                addresses.append(self.address(line, parts[1]))
            elif parts[0] == "ENTRY_BEGIN":
                entries.append(self.entry(line))
            elif parts[0].startswith("$"):
                self.directive(line, parts)
            else:
                raise self.error(line, f"expected ADDRESS, ENTRY_BEGIN or RANGE_END, got {text!r}")
        return Range(start, end, number, tuple(dict.fromkeys(addresses)), tuple(entries))

    def address(self, number: int, text: str) -> str:
        try:
            return ipaddress.ip_address(text).compressed
        except ValueError:
            raise self.error(number, f"not an IP address: {text!r}") from None

    def step(self, number: int, words: list[str]) -> Step:
        if len(words) < 3 or not words[1].isdigit():
            raise self.error(number, "expected STEP id TYPE")
        step_id = int(words[1])
        try:
            kind = StepKind(words[2])
        except ValueError:
            raise self.error(number, f"unsupported step type {words[2]!r}") from None
        args = words[3:]
        elapse: float | None = None
        if kind is StepKind.TIME_PASSES:
            if len(args) < 2 or args[0] != "ELAPSE":
                raise self.error(number, "expected TIME_PASSES ELAPSE seconds")
            try:
                elapse = float(args[1])
            except ValueError:
                raise self.error(number, f"ELAPSE: not a number: {args[1]!r}") from None
            args = args[2:]
        entry: Entry | None = None
        following = self.peek()
        if following is not None and following[1] == "ENTRY_BEGIN":
            line, _ = self.need_line("ENTRY_BEGIN")
            entry = self.entry(line)
            another = self.peek()
            if another is not None and another[1] == "ENTRY_BEGIN":
                raise self.error(another[0], f"STEP {step_id} has more than one entry")
        elif kind in _NEEDS_ENTRY:
            raise self.error(number, f"STEP {step_id} {kind} needs an ENTRY")
        return Step(step_id, kind, number, entry, elapse, tuple(args))

    def peek(self) -> tuple[int, str] | None:
        """The number and first word of the next non-blank line, without consuming it."""
        saved = self.index
        got = self.next_line()
        self.index = saved
        return None if got is None else (got[0], got[1].split()[0])

    def entry(self, number: int) -> Entry:
        draft = _EntryDraft(number)
        section: str | None = None
        while True:
            line, text = self.need_line("ENTRY_END")
            words = text.split()
            keyword = words[0]
            if keyword == "ENTRY_END":
                return self.freeze(draft)
            if keyword in _BLOCK_KEYWORDS:
                raise self.error(line, f"{keyword} before ENTRY_END of the entry on line {number}")
            if keyword == "MATCH":
                draft.has_match_line = True
                draft.match |= {self.word(line, w.lower(), MATCH_WORDS, "MATCH") for w in words[1:]}
            elif keyword == "ADJUST":
                draft.adjust |= {self.word(line, w, ADJUST_WORDS, "ADJUST") for w in words[1:]}
            elif keyword in ("REPLY", "FLAGS"):
                draft.reply_words.extend(w.upper() for w in words[1:])
            elif keyword == "MANDATORY":
                draft.mandatory = True
            elif keyword == "TSIG":
                if len(words) != 3:
                    raise self.error(line, "expected TSIG keyname secret")
                draft.tsig = Tsig(words[1], words[2])
            elif keyword == "SECTION":
                if len(words) != 2 or words[1].lower() not in SECTIONS:
                    raise self.error(line, f"unknown section {' '.join(words[1:])!r}")
                section = words[1].lower()
                draft.sections.add(section)
            elif keyword == "RAW":
                draft.raw_hex = [] if draft.raw_hex is None else draft.raw_hex
                draft.raw_hex.extend(words[1:])
                section = "raw"
            elif keyword.startswith("$"):
                self.directive(line, words)
            elif section == "raw":
                assert draft.raw_hex is not None
                draft.raw_hex.extend(words)
            elif section is not None:
                draft.records[section].append(self.record(line, text, section))
            else:
                raise self.error(line, f"expected MATCH, ADJUST, REPLY or SECTION, got {text!r}")

    def word(self, line: int, word: str, known: frozenset[str], what: str) -> str:
        if word not in known:
            raise self.error(line, f"unknown {what} element {word!r}")
        return word

    def record(self, line: int, text: str, section: str) -> Record:
        last = line
        while _paren_balance(text) > 0 and self.index < len(self.lines):
            self.index += 1
            last = self.index
            text += " " + _strip_comment(self.lines[self.index - 1]).strip()
        try:
            return parse_record(
                text,
                line,
                question=section == "question",
                origin=self.origin,
                default_ttl=self.default_ttl,
            )
        except (ValueError, dns.exception.DNSException) as exc:
            lines = f" (lines {line}-{last})" if last != line else ""
            what = f"bad record in SECTION {section.upper()}{lines}: {exc}"
            raise self.error(line, what) from None

    def freeze(self, draft: _EntryDraft) -> Entry:
        opcodes: list[dns.opcode.Opcode] = []
        rcodes: list[dns.rcode.Rcode] = []
        flags = 0
        dnssec_ok = False
        for word in draft.reply_words:
            if word in _HEADER_FLAGS:
                flags |= dns.flags.from_text(word)
            elif word == "DO":
                dnssec_ok = True
            elif word in dns.rcode.Rcode.__members__:
                rcodes.append(dns.rcode.from_text(word))
            elif word in dns.opcode.Opcode.__members__:
                opcodes.append(dns.opcode.from_text(word))
            else:
                raise self.error(draft.line, f"unknown REPLY word {word!r}")
        if len(set(rcodes)) > 1 or len(set(opcodes)) > 1:
            raise self.error(draft.line, f"conflicting REPLY words: {' '.join(draft.reply_words)}")
        raw: bytes | None = None
        if draft.raw_hex is not None:
            try:
                raw = binascii.unhexlify("".join(draft.raw_hex))
            except (binascii.Error, ValueError) as exc:
                raise self.error(draft.line, f"RAW is not hex: {exc}") from None
        return Entry(
            line=draft.line,
            match=frozenset(draft.match),
            has_match_line=draft.has_match_line,
            adjust=frozenset(draft.adjust),
            reply_words=tuple(draft.reply_words),
            opcode=opcodes[0] if opcodes else dns.opcode.Opcode.QUERY,
            rcode=rcodes[0] if rcodes else dns.rcode.Rcode.NOERROR,
            flags=flags,
            dnssec_ok=dnssec_ok,
            question=tuple(draft.records["question"]),
            answer=tuple(draft.records["answer"]),
            authority=tuple(draft.records["authority"]),
            additional=tuple(draft.records["additional"]),
            sections=frozenset(draft.sections),
            raw=raw,
            mandatory=draft.mandatory,
            tsig=draft.tsig,
        )


def iter_corpus(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """The `.rpl` files directly in `directory`, sorted by name."""
    yield from sorted(Path(directory).glob("*.rpl"))
