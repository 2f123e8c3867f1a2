"""Email-in's trust boundary: a message acts for a contact only when its sender is authenticated.

Messages are really signed with dkimpy, with RSA keys made for the test run (never committed);
DNS answers (DKIM keys, DMARC records) come from a table through dkimpy's ``dnsfunc`` hook. The
receiving server's verdicts are ``Authentication-Results`` headers: only the topmost one of a
trusted authserv-id counts. Whatever is not authenticated is held for staff, never posted."""
from __future__ import annotations

import base64
import hashlib
import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mailin_helpers import TRUSTED_MX, fixture, open_ticket, trust_receiver

from crm_portal.db import db
from crm_portal.mailin import authenticity, pipeline
from crm_portal.mailin.models import InboundMessage
from crm_portal.models import OutboxMessage
from crm_portal.modules.tickets.models import Ticket, TicketComment

SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[bytes, bytes]]:
    """A fresh RSA key per signing domain: the private key (PEM) and its DKIM TXT record."""
    made = {}
    for domain in ("acme.example", "mail.acme.example", "evil.example", "forwarder.example"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        made[domain] = (private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))
    return made


class FakeDns:
    """TXT records by name, and the names asked for (dkimpy's ``dnsfunc`` signature)."""

    def __init__(self, records: dict[str, bytes]) -> None:
        self.records, self.asked = records, []

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        key = name.decode().rstrip(".").lower()
        self.asked.append(key)
        return self.records.get(key)


@pytest.fixture
def dns(monkeypatch, keys) -> FakeDns:
    """The DNS the checks see: every test key under ``sel._domainkey.<domain>`` and a DMARC
    ``p=reject`` record for acme.example; a test edits the records. No real resolver is asked."""
    records = {f"sel._domainkey.{domain}": record for domain, (_key, record) in keys.items()}
    records["_dmarc.acme.example"] = b"v=DMARC1; p=reject; rua=mailto:dmarc@acme.example"
    fake = FakeDns(records)
    monkeypatch.setattr(authenticity, "txt_lookup", fake)
    return fake


def bare(name: str = "new_request_plain.eml", **values: str) -> bytes:
    """A fixture without the receiving server's ``Authentication-Results``: as the sender wrote it."""
    raw = fixture(name, **values)
    return re.sub(rb"\AAuthentication-Results:.*?\n(?=\S)", b"", raw, flags=re.DOTALL)


def signed(raw: bytes, keys, domain: str = "acme.example", **options) -> bytes:
    """``raw`` with a DKIM signature of ``domain`` (selector ``sel``) on top."""
    header = dkim.sign(raw, b"sel", domain.encode(), keys[domain][0], include_headers=SIGNED_HEADERS,
                       linesep=b"\n", **options)
    return header + raw


def with_results(raw: bytes, *headers: str) -> bytes:
    """``raw`` with ``Authentication-Results`` headers on top, in the order given (topmost first)."""
    return b"".join(f"Authentication-Results: {h}\n".encode() for h in headers) + raw


def ingest(app, raw: bytes, transport: str = "api") -> InboundMessage:
    with app.app_context(), db.connection_context():
        return pipeline.ingest(raw, transport)


def counts(app) -> tuple[int, int]:
    with app.app_context(), db.connection_context():
        return Ticket.select().count(), TicketComment.select().count()


def mail_to(app, address: str) -> list[OutboxMessage]:
    with app.app_context(), db.connection_context():
        return list(OutboxMessage.select().where(OutboxMessage.to_address == address))


def assert_held(app, row: InboundMessage, before: tuple[int, int], *words: str) -> None:
    assert (row.status, row.reason) == ("held", "unauthenticated"), (row.status, row.reason, row.detail)
    assert counts(app) == before and row.ticket_id is None and not row.replied
    for word in words:
        assert word in row.detail, row.detail


@pytest.fixture
def local(app, dns):
    """The portal verifies DKIM and DMARC itself: no receiving server is trusted."""
    app.config["MAILIN_VERIFY_DKIM"] = True
    app.config["MAILIN_TRUSTED_AUTHSERV_IDS"] = []
    return dns


# --- the attack: a plain message with a contact's From -------------------------------------------
@pytest.mark.parametrize("tagged", [False, True])
def test_a_plain_message_with_a_contact_s_from_is_held_not_posted(app, demo, tagged):
    """The report: anyone's ``From: anna@acme.example`` became her comment on TT1 or her ticket;
    also with the receiving server's dmarc=fail and Received-SPF: fail."""
    trust_receiver(app)
    raw = bare()
    if tagged:
        ticket, _ = open_ticket(app)
        raw = raw.replace(b"Subject: ", f"Subject: [{ticket.number}] ".encode(), 1)
    before, outbox = counts(app), len(mail_to(app, "anna@acme.example"))
    plain = ingest(app, raw)
    assert_held(app, plain, before, "no Authentication-Results of a trusted server")
    failed = raw.replace(b"CAnew-request-1", b"CAnew-request-2")
    failed = b"Received-SPF: fail (acme.example: 203.0.113.9 is not permitted)\n" + with_results(
        failed, f"{TRUSTED_MX}; dkim=none; spf=fail smtp.mailfrom=anna@acme.example; "
                 "dmarc=fail (p=reject) header.from=acme.example")
    row = ingest(app, failed)
    assert_held(app, row, before, "dmarc=fail")
    assert len(mail_to(app, "anna@acme.example")) == outbox  # nothing answers the forger


def test_received_spf_pass_alone_authenticates_nothing(app, demo):
    trust_receiver(app)
    raw = b"Received-SPF: pass (mx.portal.example: domain of anna@acme.example designates 192.0.2.1)\n" + bare()
    assert_held(app, ingest(app, raw), counts(app))


# --- Authentication-Results: which header counts --------------------------------------------------
PASS = (f"{TRUSTED_MX}; dkim=pass header.d=acme.example; spf=pass smtp.mailfrom=anna@acme.example; "
        "dmarc=pass header.from=acme.example")
FAIL = f"{TRUSTED_MX}; dkim=none; spf=softfail smtp.mailfrom=anna@acme.example; dmarc=fail header.from=acme.example"


def test_the_trusted_server_s_dmarc_pass_opens_the_ticket(app, demo):
    trust_receiver(app)
    row = ingest(app, with_results(bare(), PASS))
    assert row.status == "ticket_created"
    assert f"sender: {TRUSTED_MX}: dmarc=pass" in row.detail


def test_an_attacker_s_trusted_looking_header_below_the_real_one_is_ignored(app, demo):
    """The attacker writes ``mx.portal.example; dmarc=pass`` into the message; our server adds its
    own verdict on top: only that topmost one counts."""
    trust_receiver(app)
    before = counts(app)
    row = ingest(app, with_results(bare(), FAIL, PASS))
    assert_held(app, row, before, "dmarc=fail")


def test_a_pass_of_an_untrusted_server_is_ignored_above_or_below(app, demo):
    trust_receiver(app)
    forged = "mx.attacker.example; dkim=pass header.d=acme.example; dmarc=pass header.from=acme.example"
    before = counts(app)
    above = ingest(app, with_results(bare(), forged, FAIL))
    assert_held(app, above, before, f"{TRUSTED_MX}: ", "dmarc=fail")
    alone = ingest(app, with_results(bare().replace(b"CAnew-request-1", b"CAnew-request-3"), forged))
    assert_held(app, alone, before, "no Authentication-Results of a trusted server")


def test_authserv_ids_are_compared_whole_and_without_case(app, demo):
    trust_receiver(app)
    before = counts(app)
    look_alike = PASS.replace(TRUSTED_MX, f"{TRUSTED_MX}.attacker.example")
    assert_held(app, ingest(app, with_results(bare(), look_alike)), before)
    upper = with_results(bare().replace(b"CAnew-request-1", b"CAnew-request-4"), PASS.replace(TRUSTED_MX,
                                                                                              TRUSTED_MX.upper()))
    assert ingest(app, upper).status == "ticket_created"


def test_a_pass_for_another_from_domain_does_not_count(app, demo):
    """The trusted server checked DMARC for a domain that is not the From we act on."""
    trust_receiver(app)
    other = PASS.replace("header.from=acme.example", "header.from=evil.example")
    assert_held(app, ingest(app, with_results(bare(), other)), counts(app))


def test_several_from_addresses_are_never_authenticated(app, demo):
    trust_receiver(app)
    raw = with_results(bare().replace(b"From: Anna Rossi <anna@acme.example>",
                                      b"From: Anna Rossi <anna@acme.example>, Eve <eve@evil.example>"), PASS)
    assert_held(app, ingest(app, raw), counts(app), "exactly one address")


@pytest.mark.parametrize(("results", "passes"), [
    ("dkim=pass header.d=acme.example; dmarc=none header.from=acme.example", True),
    ("dkim=pass header.i=@mail.acme.example; dmarc=none header.from=acme.example", True),
    ("dkim=pass header.d=evil.example; dmarc=none header.from=acme.example", False),
    ("dkim=pass header.d=acme.example.evil.example; dmarc=none header.from=acme.example", False),
    ("spf=pass smtp.mailfrom=bounces@mail.acme.example; dmarc=none header.from=acme.example", True),
    ("spf=pass smtp.mailfrom=anna@evil.example; dmarc=none header.from=acme.example", False),
    ("dkim=fail header.d=acme.example; spf=neutral smtp.mailfrom=acme.example", False),
])
def test_dkim_or_spf_counts_only_when_aligned(app, demo, results, passes):
    trust_receiver(app)
    app.config["MAILIN_SENDER_AUTH"] = "dkim-or-spf"
    row = ingest(app, with_results(bare(), f"{TRUSTED_MX}; {results}"))
    assert (row.status == "ticket_created") is passes, row.detail
    app.config["MAILIN_SENDER_AUTH"] = "dmarc"  # the default: an aligned pass is not a DMARC pass
    again = ingest(app, with_results(bare().replace(b"CAnew-request-1", b"CAnew-request-9"),
                                     f"{TRUSTED_MX}; {results}"))
    assert (again.status, again.reason) == ("held", "unauthenticated")


def test_off_takes_every_message_as_from_its_sender(app, demo):
    app.config["MAILIN_SENDER_AUTH"] = "off"
    assert ingest(app, bare()).status == "ticket_created"


# --- DKIM verified by the portal ------------------------------------------------------------------
def test_a_genuinely_signed_message_passes(app, demo, local, keys):
    row = ingest(app, signed(bare(), keys))
    assert row.status == "ticket_created", row.detail
    assert "dkim=pass d=acme.example" in row.detail and "dmarc=pass" in row.detail
    assert "sel._domainkey.acme.example" in local.asked and "_dmarc.acme.example" in local.asked


def test_a_forged_from_without_signature_is_held(app, demo, local):
    assert_held(app, ingest(app, bare()), counts(app), "dkim=none")


def test_a_message_signed_by_another_domain_is_held(app, demo, local, keys):
    """A valid signature of evil.example says nothing about Anna of acme.example."""
    row = ingest(app, signed(bare(), keys, "evil.example"))
    assert_held(app, row, counts(app), "dkim=pass d=evil.example", "dmarc=fail")


def test_a_body_altered_after_signing_is_held(app, demo, local, keys):
    raw = signed(bare(), keys).replace(b"l'anteprima dei cedolini", b"bonificate 10.000 EUR su IT60X")
    assert_held(app, ingest(app, raw), counts(app), "dkim=fail d=acme.example")


def test_a_from_changed_after_signing_is_held(app, demo, local, keys):
    raw = signed(bare().replace(b"anna@acme.example", b"eve@acme.example"), keys)
    raw = raw.replace(b"From: Anna Rossi <eve@acme.example>", b"From: Anna Rossi <anna@acme.example>")
    assert_held(app, ingest(app, raw), counts(app), "dkim=fail")


def signed_without_from(raw: bytes, keys) -> bytes:
    """A valid acme.example signature whose ``h=`` leaves ``From`` out (dkimpy refuses to make
    one, so it is put together from its parts): From could be anything."""
    from dkim.canonicalization import CanonicalizationPolicy
    from dkim.crypto import parse_pem_private_key

    signer = dkim.DKIM(raw, linesep=b"\n")
    signer.hasher = hashlib.sha256
    policy = CanonicalizationPolicy.from_c_value(b"relaxed/simple")
    headers = (b"to", b"subject", b"date", b"message-id")
    body_hash = base64.b64encode(hashlib.sha256(policy.canonicalize_body(signer.body)).digest())
    fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/simple"), (b"d", b"acme.example"),
              (b"s", b"sel"), (b"h", b" : ".join(headers)), (b"bh", body_hash), (b"b", b"0" * 60)]
    private = parse_pem_private_key(keys["acme.example"][0])
    return b"DKIM-Signature: " + signer.gen_header(fields, headers, policy, b"DKIM-Signature", private) + raw


def test_a_signature_that_does_not_cover_from_does_not_count(app, demo, local, keys):
    raw = signed_without_from(bare(), keys)
    assert dkim.verify(raw, dnsfunc=local)  # dkimpy alone accepts it
    assert_held(app, ingest(app, raw), counts(app), "From is not signed")


def test_a_signature_of_part_of_the_body_does_not_count(app, demo, local, keys):
    raw = signed(bare(), keys, length=True) + b"\nPS: paid by bank transfer to the new account.\n"
    assert_held(app, ingest(app, raw), counts(app), "l=")


def test_relaxed_alignment_unless_the_domain_asks_for_strict(app, demo, local, keys):
    row = ingest(app, signed(bare(), keys, "mail.acme.example"))
    assert row.status == "ticket_created", row.detail
    local.records["_dmarc.acme.example"] = b"v=DMARC1; p=reject; adkim=s"
    again = signed(bare().replace(b"CAnew-request-1", b"CAnew-request-5"), keys, "mail.acme.example")
    assert_held(app, ingest(app, again), counts(app), "dmarc=fail")


def test_without_a_dmarc_record_only_dkim_or_spf_accepts(app, demo, local, keys):
    del local.records["_dmarc.acme.example"]
    row = ingest(app, signed(bare(), keys))
    assert_held(app, row, counts(app), "dmarc=none")
    app.config["MAILIN_SENDER_AUTH"] = "dkim-or-spf"
    again = ingest(app, signed(bare().replace(b"CAnew-request-1", b"CAnew-request-6"), keys))
    assert again.status == "ticket_created", again.detail


def test_a_trusted_verdict_wins_over_the_portal_s_own_check(app, demo, local, keys):
    """Where a trusted server gave its verdict, the portal does not second-guess it."""
    trust_receiver(app)
    row = ingest(app, with_results(signed(bare(), keys), FAIL))
    assert_held(app, row, counts(app), "dmarc=fail")
    assert local.asked == []


# --- forwarded mail and ARC ---------------------------------------------------------------------
FORWARDER = "mx.forwarder.example"


def forwarded_through_a_list(keys) -> bytes:
    """Anna's signed message through a forwarder that checks it (dmarc=pass), adds a footer (the
    DKIM signature breaks) and seals the result with ARC as forwarder.example."""
    original = signed(bare(), keys)
    checked = with_results(original, f"{FORWARDER}; dkim=pass header.d=acme.example; "
                                     "dmarc=pass header.from=acme.example")
    changed = checked + b"\n-- \nInoltrato dalla lista supporto-clienti\n"
    seal = dkim.arc_sign(changed, b"sel", b"forwarder.example", keys["forwarder.example"][0], FORWARDER.encode(),
                         linesep=b"\n")
    return b"".join(seal) + changed


def test_forwarded_mail_is_held_unless_the_forwarder_is_trusted(app, demo, local, keys):
    raw = forwarded_through_a_list(keys)
    before = counts(app)
    row = ingest(app, raw)
    assert_held(app, row, before, "dkim=fail d=acme.example", "arc=pass")
    app.config["MAILIN_TRUSTED_ARC_FORWARDERS"] = [FORWARDER]  # now its ARC verdict counts
    with app.app_context(), db.connection_context():
        done = pipeline.reprocess(InboundMessage.get_by_id(row.id))
    assert done.status == "ticket_created", done.detail
    assert f"ARC i=1 {FORWARDER} (sealed by forwarder.example): dmarc=pass" in done.detail


def test_a_trusted_forwarder_s_plain_header_is_not_trusted(app, demo, local, keys):
    """Its Authentication-Results header, written into a message sent to us directly, is text."""
    app.config["MAILIN_TRUSTED_ARC_FORWARDERS"] = [FORWARDER]
    raw = with_results(bare(), f"{FORWARDER}; dkim=pass header.d=acme.example; dmarc=pass header.from=acme.example")
    assert_held(app, ingest(app, raw), counts(app), "dkim=none")
    trust_receiver(app)
    app.config["MAILIN_VERIFY_DKIM"] = False
    again = ingest(app, raw.replace(b"CAnew-request-1", b"CAnew-request-8"))
    assert_held(app, again, counts(app), "no Authentication-Results of a trusted server")


def test_an_arc_seal_of_another_domain_does_not_speak_for_a_trusted_id(app, demo, local, keys):
    """An attacker seals with their own key and writes the trusted forwarder's authserv-id."""
    original = bare()
    claimed = with_results(original, f"{FORWARDER}; dkim=pass header.d=acme.example; "
                                     "dmarc=pass header.from=acme.example")
    seal = dkim.arc_sign(claimed, b"sel", b"evil.example", keys["evil.example"][0], FORWARDER.encode(),
                         linesep=b"\n")
    app.config["MAILIN_TRUSTED_ARC_FORWARDERS"] = [FORWARDER]
    row = ingest(app, b"".join(seal) + claimed)
    assert_held(app, row, counts(app), "arc=pass")


def test_a_broken_arc_chain_is_not_trusted(app, demo, local, keys):
    raw = forwarded_through_a_list(keys).replace(b"Inoltrato dalla lista", b"Modificato dopo il sigillo")
    app.config["MAILIN_TRUSTED_ARC_FORWARDERS"] = [FORWARDER]
    assert_held(app, ingest(app, raw), counts(app), "arc=fail")


def test_the_receiving_server_s_arc_pass_with_a_trusted_forwarder(app, demo, local, keys):
    """Our server (trusted) verified the chain (arc=pass) though DMARC failed after the forward:
    the forwarder's results count only when the forwarder is configured too."""
    app.config["MAILIN_VERIFY_DKIM"] = False
    trust_receiver(app)
    raw = with_results(forwarded_through_a_list(keys), f"{TRUSTED_MX}; dkim=fail header.d=acme.example; "
                                                        "arc=pass; dmarc=fail header.from=acme.example")
    row = ingest(app, raw)
    assert_held(app, row, counts(app), "dmarc=fail")
    app.config["MAILIN_TRUSTED_ARC_FORWARDERS"] = [FORWARDER]
    with app.app_context(), db.connection_context():
        done = pipeline.reprocess(InboundMessage.get_by_id(row.id))
    assert done.status == "ticket_created" and "arc=pass; ARC i=1" in done.detail
    no_arc = with_results(forwarded_through_a_list(keys).replace(b"CAnew-request-1", b"CAnew-request-7"),
                          f"{TRUSTED_MX}; arc=fail; dmarc=fail header.from=acme.example")
    assert_held(app, ingest(app, no_arc), counts(app))


# --- the release by staff -------------------------------------------------------------------------
def test_a_dns_failure_is_tried_again_not_held(app, demo, local, monkeypatch, keys):
    def down(name: bytes, timeout: float = 5) -> bytes | None:
        if name.startswith(b"_dmarc."):
            raise dkim.DnsTimeoutError("timeout")
        return local(name, timeout)

    monkeypatch.setattr(authenticity, "txt_lookup", down)
    with pytest.raises(pipeline.TemporaryFailure):
        ingest(app, signed(bare(), keys))
    with app.app_context(), db.connection_context():
        assert InboundMessage.get().status == "failed"


def test_configuration_is_checked_at_start(app):
    from crm_portal.config import ConfigurationError, _check_sender_auth

    for key, value in (("MAILIN_SENDER_AUTH", "none"), ("MAILIN_TRUSTED_AUTHSERV_IDS", "a; b"),
                       ("MAILIN_TRUSTED_ARC_FORWARDERS", {"x": 1}), ("MAILIN_VERIFY_DKIM", "yes")):
        saved = app.config[key]
        app.config[key] = value
        with pytest.raises(ConfigurationError):
            _check_sender_auth(app)
        app.config[key] = saved
    app.config["MAILIN_TRUSTED_AUTHSERV_IDS"] = "mx1.example.com, mx2.example.com"
    _check_sender_auth(app)
    assert app.config["MAILIN_TRUSTED_AUTHSERV_IDS"] == ["mx1.example.com", "mx2.example.com"]
