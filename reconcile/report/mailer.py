"""Email the report to finance over SMTP: the HTML report as the body, the CSV attached.

The SMTP connection comes from a factory passed in (`Mailer(config, password, connect=...)`), so
tests hand in a loopback server. A failure raises MailError (exit 5); the report stays on disk
and the run history marks it unsent, so the next run sends it again.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from reconcile.config import EmailConfig
from reconcile.errors import MailError
from reconcile.report.payouts import beside as payouts_csv
from reconcile.runtime.redact import smtp_facts

log = logging.getLogger(__name__)

Connect = Callable[[EmailConfig], smtplib.SMTP]


def should_send(policy: str, needs_attention: int) -> bool:
    """`always`, `never`, or `on_discrepancy`: only when the run found something that needs a person."""
    return policy == "always" or (policy == "on_discrepancy" and needs_attention > 0)


def window_text(since: datetime, until: datetime) -> str:
    """'2026-11-18 09:00 to 15:00 UTC', or with both dates when the window spans days."""
    end = until.strftime("%H:%M") if since.date() == until.date() else until.strftime("%Y-%m-%d %H:%M")
    return f"{since.strftime('%Y-%m-%d %H:%M')} to {end} UTC"


def subject(
    prefix: str,
    since: datetime,
    until: datetime,
    needs: int,
    new: int,
    open_items: int,
    repaired: int,
    part: tuple[int, int] = (1, 1),
    critical: int = 0,
    at_stake: str = "",
) -> str:
    """The subject carries the window, critical items first, the money at stake (report/queue.py) and the
    counts that need attention."""
    bits = [f"{critical} CRITICAL"] if critical else []
    if at_stake:
        bits.append(f"{at_stake} at stake")
    bits += [f"{needs} need{'s' if needs == 1 else ''} attention ({new} new)" if needs else "nothing needs attention"]
    if open_items:
        bits.append(f"{open_items} open item{'s' if open_items != 1 else ''}")
    if repaired:
        bits.append(f"{repaired} repaired")
    catch_up = f" [{part[0]}/{part[1]}]" if part[1] > 1 else ""
    return f"{prefix} {window_text(since, until)}{catch_up}: {', '.join(bits)}".strip()


def build_message(
    config: EmailConfig, subject_line: str, html: str, text: str, attachments: list[tuple[str, bytes]]
) -> EmailMessage:
    """A multipart message: plain text and HTML alternatives, files attached (CSV as text/csv), marked
    `Auto-Submitted: auto-generated`."""
    msg = EmailMessage()
    msg["Subject"] = subject_line
    msg["From"] = config.from_addr or ""
    msg["To"] = ", ".join(config.to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=(config.from_addr or "reconcile@localhost").rpartition("@")[2] or None)
    # RFC 3834: a machine wrote this; autoresponders (out-of-office, vacation) must not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    for name, data in attachments:
        maintype, subtype = {".csv": ("text", "csv"), ".html": ("text", "html")}.get(
            Path(name).suffix, ("application", "octet-stream")
        )
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def message_from_files(
    config: EmailConfig, subject_line: str, reports: list[tuple[Path, Path]], text: str
) -> EmailMessage:
    """The reports as written on disk, in one message (also how an unsent one is resent later).

    `reports` is (html, csv) per window, oldest first: the newest HTML is the body (its open
    items and trend cover everything); every CSV is attached (the payouts CSVs too), and the HTML of
    earlier windows.
    """
    body = reports[-1][0].read_text(encoding="utf-8")
    files = [(html.name, html.read_bytes()) for html, _ in reports[:-1]] + [
        (csv.name, csv.read_bytes()) for _, csv in reports
    ]
    # Each window's payouts CSV, when it itemized a payout (report/payouts.py writes it beside the report).
    files += [(p.name, p.read_bytes()) for _, csv in reports if (p := payouts_csv(csv)).is_file()]
    return build_message(config, subject_line, body, text, files)


def connect_smtp(config: EmailConfig) -> smtplib.SMTP:
    """A connected SMTP session: implicit TLS, STARTTLS (certificate checked), or plain on a trusted network."""
    timeout = config.timeout.total_seconds()
    context = ssl.create_default_context(cafile=config.ca_file) if config.security != "none" else None
    if config.security == "tls":
        return smtplib.SMTP_SSL(config.host or "", config.port, timeout=timeout, context=context)
    smtp = smtplib.SMTP(config.host or "", config.port, timeout=timeout)
    try:
        smtp.ehlo()
        if config.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
    except BaseException:
        smtp.close()
        raise
    return smtp


class Mailer:
    """Sends messages with the configured server and account; raises MailError on any failure."""

    def __init__(self, config: EmailConfig, password: str | None, connect: Connect = connect_smtp):
        self.config, self._password, self._connect = config, password, connect

    def send(self, message: EmailMessage) -> None:
        c = self.config
        try:
            smtp = self._connect(c)
            try:
                if c.user:
                    smtp.login(c.user, self._password or "")
                refused = smtp.send_message(message, from_addr=c.from_addr, to_addrs=list(c.to))
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(
                f"the SMTP server {c.host}:{c.port} refused the login of {c.user} (code {exc.smtp_code})"
            ) from None
        except smtplib.SMTPRecipientsRefused:
            raise MailError(f"the SMTP server {c.host}:{c.port} refused every recipient") from None
        except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, timeout, TLS failure
            raise MailError(f"email not sent via {c.host}:{c.port}: {smtp_facts(exc)}") from None
        if refused:
            log.warning("email.some_recipients_refused", extra={"refused": sorted(refused)})
        log.info("email.sent", extra={"to": len(c.to) - len(refused or {}), "subject": message["Subject"]})
