"""Step 4a: did the sender really write this? ``From:`` is text anyone can type, so a message acts
for a contact only when its author's domain is authenticated:

1. by the receiving mail server: the *topmost* ``Authentication-Results`` header whose authserv-id
   is in ``MAILIN_TRUSTED_AUTHSERV_IDS`` (RFC 8601). Headers of any other server, and every header
   below the first trusted one, were written before the mail reached us (an attacker can add
   them) and are never read. ``Received-SPF`` is never read.
2. else, with ``MAILIN_VERIFY_DKIM``, by the portal itself: the DKIM signatures are verified
   (dkimpy) and the From domain's DMARC record (``_dmarc.<domain>``) is applied.
3. Forwarded mail whose own authentication broke on the way (a list footer, a rewritten subject)
   counts through ARC only when the ARC chain is valid (``arc=pass`` of the trusted server, or
   verified here), the last forwarder's ``ARC-Authentication-Results`` carries an authserv-id of
   ``MAILIN_TRUSTED_ARC_FORWARDERS``, its ``ARC-Seal`` is signed by that server's own domain, and
   its results authenticate the From domain. A forwarder that is not configured is never trusted,
   and a configured one only through its seal: its plain ``Authentication-Results`` header is
   text anyone can write into a message sent to us directly.

``MAILIN_SENDER_AUTH`` says what counts: ``"dmarc"`` (DMARC pass: the domain publishes a policy
and an aligned DKIM or SPF identity passed), ``"dkim-or-spf"`` (DMARC pass, or an aligned DKIM or
SPF pass where the domain has no DMARC record) or ``"off"`` (every message is taken as from its
From address: only for a mailbox nobody outside can write to). Alignment is relaxed: the signing
(or envelope) domain and the From domain share their organisational domain (Public Suffix List).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses

import authres
import dkim
from dkim.dnsplug import get_txt
from flask import current_app
from publicsuffixlist import PublicSuffixList

from .store import all_headers

#: The values ``MAILIN_SENDER_AUTH`` takes.
POLICIES = ("dmarc", "dkim-or-spf", "off")
#: DKIM signatures verified per message at most (each may cost a DNS query).
MAX_SIGNATURES = 5
#: Seconds one DNS query may take.
DNS_TIMEOUT = 5.0

#: TXT lookups of DKIM keys and DMARC records: ``(name as bytes, timeout=…) → the record or None``
#: (dkimpy's ``dnsfunc`` hook, dnspython underneath). Replaced in tests.
txt_lookup: Callable[..., bytes | None] = get_txt


@dataclass(frozen=True)
class Verdict:
    """Whether the sender is authenticated, and the evidence staff read (``detail``)."""

    passed: bool
    detail: str


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """The registered domain of ``domain`` (``mail.acme.example`` → ``acme.example``); a public
    suffix stays itself, so that it aligns only with itself."""
    domain = domain.strip().rstrip(".").lower()
    return _suffixes().privatesuffix(domain) or domain


def aligned(identity: str, author: str, strict: bool = False) -> bool:
    """DMARC identifier alignment (RFC 7489 3.1) of an authenticated domain with the From domain."""
    identity, author = identity.strip().rstrip(".").lower(), author.strip().rstrip(".").lower()
    if not identity or not author:
        return False
    if strict:
        return identity == author
    return organisational_domain(identity) == organisational_domain(author)


def author_domain(message: EmailMessage) -> str | None:
    """The domain of the message's one author: ``None`` when ``From`` is missing, repeated or
    names several addresses (DMARC has no single domain to check then)."""
    values = all_headers(message, "From")
    if len(values) != 1:
        return None
    try:
        addresses = [a for _n, a in getaddresses(values) if a]
    except Exception:  # noqa: BLE001 - an unreadable From: no author
        return None
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    return addresses[0].rpartition("@")[2].strip().lower() or None


def _domain_of(value: str) -> str:
    """The domain of an identity property: ``user@dom``, ``@dom`` or ``dom``."""
    return value.rpartition("@")[2].strip().strip("<>").lower()


def _trusted_ids(key: str = "MAILIN_TRUSTED_AUTHSERV_IDS") -> set[str]:
    return {str(x).strip().lower() for x in current_app.config[key] or [] if str(x).strip()}


_AUTHSERV_ID = re.compile(r"^\s*(?:\([^)]*\)\s*)*([^\s;()]+)")


def trusted_results(message: EmailMessage) -> tuple[str, list[authres.core.AuthenticationResult] | None] | None:
    """The topmost ``Authentication-Results`` header written by a trusted server: its authserv-id
    and results (``None`` when that header cannot be read), or ``None`` when there is none."""
    trusted = _trusted_ids()
    for value in all_headers(message, "Authentication-Results"):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(value)
        except Exception:  # noqa: BLE001 - a broken header: trusted only if its id is, and then unreadable
            found = _AUTHSERV_ID.match(value)
            if found and found.group(1).lower() in trusted:
                return found.group(1).lower(), None
            continue
        ident = str(header.authserv_id or "").lower()
        if ident in trusted:
            return ident, list(header.results)
    return None


def _property(result: authres.core.AuthenticationResult, kind: str, name: str) -> str:
    for prop in result.properties:
        if prop.type == kind and prop.name == name and prop.value:
            return str(prop.value)
    return ""


def _summary(results: list[authres.core.AuthenticationResult]) -> str:
    parts = []
    for result in results:
        props = " ".join(f"{p.type}.{p.name}={p.value}" for p in result.properties if p.name != "b")
        parts.append(f"{result.method}={result.result}" + (f" {props}" if props else ""))
    return "; ".join(parts) or "no results"


def judge_results(results: list[authres.core.AuthenticationResult], domain: str, policy: str) -> str | None:
    """What in a trusted server's results authenticates ``domain`` (``"dmarc=pass"``, ``"dkim=pass
    header.d=…"``), or ``None``."""
    for result in results:
        if result.method == "dmarc" and result.result == "pass" \
                and _domain_of(_property(result, "header", "from")) == domain:
            return "dmarc=pass"
    if policy != "dkim-or-spf":
        return None
    for result in results:
        if result.method == "dkim" and result.result == "pass":
            signer = _domain_of(_property(result, "header", "d") or _property(result, "header", "i"))
            if aligned(signer, domain):
                return f"dkim=pass header.d={signer}"
        if result.method == "spf" and result.result == "pass":
            envelope = _domain_of(_property(result, "smtp", "mailfrom"))
            if aligned(envelope, domain):
                return f"spf=pass smtp.mailfrom={envelope}"
    return None


_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d{1,3})\s*;\s*(.*)$", re.DOTALL)
_TAG = re.compile(r"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)")


def _instance(value: str) -> tuple[int, str] | None:
    found = _INSTANCE.match(value)
    return (int(found.group(1)), found.group(2)) if found else None


def arc_forwarder(message: EmailMessage, domain: str, policy: str) -> str | None:
    """The last forwarder's ARC verdict on ``domain``, when that forwarder is trusted: its
    ``ARC-Authentication-Results`` has an authserv-id of ``MAILIN_TRUSTED_ARC_FORWARDERS``, its
    ``ARC-Seal`` (the chain the caller had verified) is signed by a domain aligned with that id,
    and its results authenticate the From domain. ``None`` otherwise. Only the highest instance
    counts: it sealed the message as we got it; earlier hops say nothing of what later ones changed."""
    sets: dict[int, dict[str, list[str]]] = {}
    for name in ("ARC-Authentication-Results", "ARC-Seal"):
        for value in all_headers(message, name):
            found = _instance(value)
            if found is not None:
                sets.setdefault(found[0], {}).setdefault(name, []).append(found[1])
    if not sets:
        return None
    last = sets[max(sets)]
    results, seals = last.get("ARC-Authentication-Results", []), last.get("ARC-Seal", [])
    if len(results) != 1 or len(seals) != 1:
        return None
    try:
        header = authres.AuthenticationResultsHeader.parse_value(results[0])
    except Exception:  # noqa: BLE001 - unreadable: not trusted
        return None
    ident = str(header.authserv_id or "").lower()
    sealer = next((v.strip().lower() for k, v in _TAG.findall(";" + seals[0]) if k.lower() == "d"), "")
    if ident not in _trusted_ids("MAILIN_TRUSTED_ARC_FORWARDERS") or not aligned(sealer, ident):
        return None
    how = judge_results(list(header.results), domain, policy)
    return f"ARC i={max(sets)} {ident} (sealed by {sealer}): {how}" if how else None


def verify_dkim(raw: bytes) -> tuple[list[str], list[str]]:
    """Verify the message's DKIM signatures: the domains whose signature is valid, covers
    ``From`` and the whole body, and a note per signature for staff."""
    try:
        signer = dkim.DKIM(raw, minkey=1024, timeout=DNS_TIMEOUT)
    except dkim.DKIMException as exc:  # headers dkimpy cannot read: no signature verifies
        return [], [f"dkim=permerror ({str(exc)[:200]})"]
    count = sum(1 for name, _v in signer.headers if name.lower() == b"dkim-signature")
    passed, notes = [], []
    for idx in range(min(count, MAX_SIGNATURES)):
        checker = dkim.DKIM(raw, minkey=1024, timeout=DNS_TIMEOUT)
        try:
            ok = checker.verify(idx, dnsfunc=txt_lookup)
        except (dkim.DKIMException, ValueError, IndexError, KeyError) as exc:  # a malformed signature fails
            ok, why = False, f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            why = "" if ok else "signature does not verify"
        domain = getattr(checker, "domain", b"") or b""
        name = domain.decode("ascii", "replace").lower()
        fields = getattr(checker, "signature_fields", {}) or {}
        if ok and b"from" not in getattr(checker, "include_headers", ()):
            ok, why = False, "From is not signed"
        if ok and b"l" in fields:
            ok, why = False, "signs only part of the body (l=)"
        if ok:
            passed.append(name)
        notes.append(f"dkim={'pass' if ok else 'fail'} d={name or '?'}" + (f" ({why})" if why else ""))
    return passed, notes or ["dkim=none (no signature)"]


def dmarc_record(domain: str) -> dict[str, str] | None:
    """The DMARC record that applies to ``domain`` (its own, else its organisational domain's),
    as tags; ``None`` when there is none. A DNS failure raises (the message is tried again)."""
    for name in dict.fromkeys((domain, organisational_domain(domain))):
        try:
            text = txt_lookup(f"_dmarc.{name}.".encode("idna"), timeout=DNS_TIMEOUT)
        except UnicodeError:
            return None
        if not text:
            continue
        record = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        tags = {k.strip().lower(): v.strip() for k, _, v in
                (part.partition("=") for part in record.split(";")) if k.strip()}
        if tags.get("v") == "DMARC1":
            return tags
    return None


def verify_locally(raw: bytes, domain: str, policy: str) -> Verdict:
    """DKIM verified here and the From domain's DMARC policy applied (no SPF: the portal does not
    see the connecting server)."""
    signers, notes = verify_dkim(raw)
    if not signers:
        return Verdict(False, "verified by the portal: " + "; ".join(notes))
    record = dmarc_record(domain)
    dmarc_pass = False
    if record is None:
        notes.append("dmarc=none (no DMARC record)")
    else:
        strict = record.get("adkim", "r").lower() == "s"
        dmarc_pass = any(aligned(s, domain, strict) for s in signers)
        notes.append(f"dmarc={'pass' if dmarc_pass else 'fail'} header.from={domain} (p={record.get('p', '?')})")
    passed = dmarc_pass or (policy == "dkim-or-spf" and any(aligned(s, domain) for s in signers))
    return Verdict(passed, "verified by the portal: " + "; ".join(notes))


def check(message: EmailMessage, raw: bytes) -> Verdict:
    """Whether ``message`` (``raw``: its bytes as received) is authenticated as written from its
    From domain, under ``MAILIN_SENDER_AUTH``."""
    config = current_app.config
    policy = str(config["MAILIN_SENDER_AUTH"])
    if policy == "off":
        return Verdict(True, "sender authentication is off (MAILIN_SENDER_AUTH)")
    domain = author_domain(message)
    if domain is None:
        return Verdict(False, "From must name exactly one address")
    found = trusted_results(message)
    if found is not None:
        ident, results = found
        if results is None:
            return Verdict(False, f"{ident}: unreadable Authentication-Results")
        how = judge_results(results, domain, policy)
        if how is None and any(r.method == "arc" and r.result == "pass" for r in results):
            forwarded = arc_forwarder(message, domain, policy)
            if forwarded is not None:
                return Verdict(True, f"{ident}: arc=pass; {forwarded}"[:2000])
        return Verdict(how is not None, f"{ident}: {how or _summary(results)}"[:2000])
    if config["MAILIN_VERIFY_DKIM"]:
        verdict = verify_locally(raw, domain, policy)
        if not verdict.passed and all_headers(message, "ARC-Seal"):
            try:
                cv, _results, why = dkim.arc_verify(raw, dnsfunc=txt_lookup, timeout=DNS_TIMEOUT)
            except (ValueError, IndexError, KeyError) as exc:  # ARC headers dkimpy cannot read: no chain
                cv, why = dkim.CV_Fail, f"{type(exc).__name__}: {str(exc)[:200]}"
            forwarded = arc_forwarder(message, domain, policy) if cv == dkim.CV_Pass else None
            note = f"arc={cv.decode('ascii', 'replace')}" + (f" ({why})" if why and cv != dkim.CV_Pass else "")
            return Verdict(forwarded is not None, "; ".join(x for x in (verdict.detail, note, forwarded) if x)[:2000])
        return verdict
    ids = ", ".join(sorted(_trusted_ids())) or "none configured"
    return Verdict(False, f"no Authentication-Results of a trusted server (MAILIN_TRUSTED_AUTHSERV_IDS: {ids}) "
                          "and the portal does not verify DKIM itself (MAILIN_VERIFY_DKIM)")
