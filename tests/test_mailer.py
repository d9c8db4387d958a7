"""Email against a real SMTP server on loopback (aiosmtpd): plain, STARTTLS with login, and an outage."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SmtpSink

from reconcile.config import parse_config
from reconcile.demo.embedded_mongo import free_port
from reconcile.errors import MailError
from reconcile.report import mailer

SINCE = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


def email_config(port: int, **overrides):
    raw = {
        "send": "always",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_addr": "reconcile@shop.example",
        "to": ["finance@shop.example", "cfo@shop.example"],
        "timeout": "5s",
        **overrides,
    }
    return parse_config({"mongodb": {"database": "x"}, "email": raw}).email


def message(cfg):
    return mailer.build_message(
        cfg,
        "[reconcile] test",
        "<html><body><p>report &amp; more</p></body></html>",
        "plain text",
        [("reconcile-x.csv", b"outcome,order_id\r\norphan_charge,o1\r\n")],
    )


def test_the_message_arrives_with_html_and_csv(smtp_sink):
    cfg = email_config(smtp_sink.port)
    mailer.Mailer(cfg, None).send(message(cfg))
    (received,) = smtp_sink.messages
    assert sorted(smtp_sink.envelopes[0].rcpt_tos) == ["cfo@shop.example", "finance@shop.example"]
    assert received["Subject"] == "[reconcile] test" and received["From"] == "reconcile@shop.example"
    assert received["Auto-Submitted"] == "auto-generated"  # RFC 3834: no out-of-office replies to the job
    assert "report &amp; more" in received.get_body(("html",)).get_content()
    (attachment,) = list(received.iter_attachments())
    assert attachment.get_filename() == "reconcile-x.csv" and attachment.get_content_type() == "text/csv"
    assert "orphan_charge,o1" in attachment.get_content()


def test_server_down_raises_mail_error_without_the_password():
    cfg = email_config(free_port(), security="starttls", user="reconcile")
    with pytest.raises(MailError, match=r"email not sent via 127\.0\.0\.1:\d+: ConnectionRefusedError") as failed:
        mailer.Mailer(cfg, "s3cret-pass").send(message(cfg))
    assert "s3cret-pass" not in str(failed.value)


@pytest.fixture
def tls_cert(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert


class Accounts:
    def __init__(self):
        self.logins = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"reconcile" and auth_data.password == b"s3cret-pass"
        return AuthResult(success=ok, handled=False)


def test_starttls_with_login_and_a_checked_certificate(tls_cert):
    key, cert = tls_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    accounts = Accounts()
    with SmtpSink(tls_context=context, require_starttls=True, authenticator=accounts, auth_require_tls=True) as sink:
        good = email_config(sink.port, security="starttls", user="reconcile", ca_file=str(cert))
        mailer.Mailer(good, "s3cret-pass").send(message(good))
        assert len(sink.messages) == 1 and accounts.logins == [(b"reconcile", b"s3cret-pass")]
        with pytest.raises(MailError, match="refused the login of reconcile"):
            mailer.Mailer(good, "wrong").send(message(good))
        untrusted = email_config(sink.port, security="starttls", user="reconcile")  # system CAs: self-signed refused
        with pytest.raises(MailError, match="SSLCertVerificationError"):
            mailer.Mailer(untrusted, "s3cret-pass").send(message(untrusted))
        assert len(sink.messages) == 1


def test_subject_and_policy():
    until = SINCE + timedelta(hours=6)
    assert mailer.subject("[reconcile]", SINCE, until, 3, 1, 5, 2) == (
        "[reconcile] 2026-11-18 09:00 to 15:00 UTC: 3 need attention (1 new), 5 open items, 2 repaired"
    )
    assert mailer.subject("[r]", SINCE, SINCE + timedelta(days=1), 0, 0, 0, 0, (2, 3)) == (
        "[r] 2026-11-18 09:00 to 2026-11-19 09:00 UTC [2/3]: nothing needs attention"
    )
    assert mailer.subject("[r]", SINCE, until, 3, 1, 5, 0, at_stake="535.06 USD + 4,980 JPY") == (
        "[r] 2026-11-18 09:00 to 15:00 UTC: 535.06 USD + 4,980 JPY at stake, 3 need attention (1 new), 5 open items"
    )
    assert mailer.should_send("always", 0) and not mailer.should_send("never", 9)
    assert mailer.should_send("on_discrepancy", 1) and not mailer.should_send("on_discrepancy", 0)
