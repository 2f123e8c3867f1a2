"""Step 5: the words of the message. Plain text is preferred; HTML is sanitised (nh3) and turned
into text (html2text). The quoted history is cut at our own marker, then by mail-parser-reply,
which knows the Italian and English headers of Gmail, Outlook and Apple Mail quotes."""
from __future__ import annotations

import re
from email.message import EmailMessage, Message

import html2text
import nh3
from mailparser_reply import EmailReplyParser

from .signing import MARKER_RE

#: Longest text kept (a comment or a description); the original message stays available in full.
MAX_TEXT = 60_000
_LANGUAGES = ["it", "en"]


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    return disposition == "attachment" or (disposition == "inline" and bool(part.get_filename()))


def part_text(part: Message) -> str:
    """A text part decoded; an unknown or wrong charset is read as UTF-8 with replacements."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, AssertionError, ValueError, KeyError):
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    """Sanitised HTML (scripts, styles and event handlers gone) as readable text."""
    clean = nh3.clean(html, tags={"a", "b", "strong", "i", "em", "u", "p", "br", "div", "span", "ul", "ol",
                                  "li", "blockquote", "pre", "code", "h1", "h2", "h3", "h4", "table", "tr",
                                  "td", "th", "tbody", "thead", "hr"},
                      clean_content_tags={"script", "style", "title", "head"}, attributes={"a": {"href"}},
                      link_rel=None)
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = False
    converter.protect_links = True
    return converter.handle(clean).strip()


def _find(message: EmailMessage, subtype: str) -> Message | None:
    for part in message.walk():
        if part.is_multipart() or _is_attachment(part):
            continue
        if part.get_content_type() in ("message/rfc822",):
            continue
        if part.get_content_type() == f"text/{subtype}":
            return part
    return None


def full_text(message: EmailMessage) -> str:
    """The whole body as text: the first text/plain part, else the first text/html converted."""
    plain = _find(message, "plain")
    if plain is not None:
        text = part_text(plain)
        if text.strip():
            return _tidy(text)
    html = _find(message, "html")
    if html is not None:
        return _tidy(html_to_text(part_text(html)))
    return ""


def all_text(message: EmailMessage) -> str:
    """Every text part, plain and HTML as they are (where signed references are looked for)."""
    chunks = []
    for part in message.walk():
        if part.get_content_maintype() == "text" and not _is_attachment(part):
            chunks.append(part_text(part)[:MAX_TEXT * 4])
    return "\n".join(chunks)


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()[:MAX_TEXT]


def reply_text(text: str) -> str:
    """The new words of a reply: cut at our marker, then at the quote header the reply parser knows
    (``Il giorno … ha scritto:``, ``On … wrote:``, ``Da: / Inviato:``, ``From: / Sent:``) and its
    signature. Falls back to the text before the marker when the parser finds nothing."""
    marker = MARKER_RE.search(text)
    if marker:
        text = text[:marker.start()]
    text = text.strip()
    if not text:
        return ""
    try:
        parsed = EmailReplyParser(languages=_LANGUAGES).parse_reply(text=text)
    except Exception:  # noqa: BLE001 - a parser failure keeps the whole (marker-cut) text
        parsed = ""
    parsed = (parsed or "").strip()
    return _strip_quote_header(parsed or text)


_QUOTE_HEADER = re.compile(
    r"\n[^\n]*(?:ha scritto|wrote|scrive)\s*:\s*(?:\n>?\s*)*$", re.IGNORECASE)


def _strip_quote_header(text: str) -> str:
    """A dangling "On … wrote:" left at the end once the quote was cut."""
    return _QUOTE_HEADER.sub("", "\n" + text).strip()
