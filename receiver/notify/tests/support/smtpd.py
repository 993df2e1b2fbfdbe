#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for receiver/notify/tests/smtp.rs.

Listens on 127.0.0.1 on a free port and prints that port on stdout (one
line), then serves until stdin closes (the test holds the pipe: when the test
process goes, so does the server) or it is killed.

Modes:
  starttls  plain connection, STARTTLS offered and required before any mail
  tls       TLS from the first byte (implicit TLS, "SMTPS")
  plain     no TLS at all

With --user and --password, AUTH (PLAIN, LOGIN) is offered and required
before MAIL, and accepts only that user and password: after STARTTLS in
starttls mode, at once otherwise (in plain mode that is AUTH in clear, on
purpose: a client that falls back to plaintext would be seen). Each AUTH
attempt is noted in <--out>.auth (the mechanism, never the password).

Each message received is appended to --out as one JSON line: the envelope
(mail_from, rcpt_tos), the raw content as received, and the message as a
mail reader parses it (decoded subject and body, Date, Message-ID, headers).

Recipients whose local part is "busy" are refused with a 451 (try again
later), those whose local part is "nobody" with a 550 (no such user).

Needs aiosmtpd (python3 -m pip install aiosmtpd; .ci/run installs it).
"""

import argparse
import asyncio
import email
import email.policy
import email.utils
import json
import logging
import os
import socket
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "busy":
            return "451 4.3.0 Mailbox busy, try again later"
        if local == "nobody":
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "raw": raw.decode("utf-8", "replace"),
            "subject": str(msg["Subject"]) if msg["Subject"] is not None else None,
            "from": str(msg["From"]) if msg["From"] is not None else None,
            "to": str(msg["To"]) if msg["To"] is not None else None,
            "date": str(msg["Date"]) if msg["Date"] is not None else None,
            "date_epoch": date_epoch(msg["Date"]),
            "message_id": str(msg["Message-ID"]) if msg["Message-ID"] is not None else None,
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "body": body.get_content() if body is not None else None,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "tls": session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None,
            "authenticated": bool(session.authenticated),
        }
        # written (and flushed) before the 250: when the client's send
        # returns, the message is on disk
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return "250 2.0.0 OK"


def date_epoch(value):
    """The Date header as seconds since the epoch, None if missing or unparsable."""
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError):
        return None


def authenticator(user, password, log):
    def check(server, session, envelope, mechanism, auth_data):
        # every attempt noted (never the password): a test can tell that a
        # client never tried to authenticate
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"mechanism": mechanism}) + "\n")
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: aiosmtpd answers 535 5.7.8 on a refusal
        return AuthResult(success=ok, handled=False)

    return check


async def main():
    # expected here, and noise in the tests' output: the AUTH-without-TLS
    # warning (implicit TLS is TLS; aiosmtpd cannot tell) and a deprecation
    # aiosmtpd logs on each AUTH
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["starttls", "tls", "plain"], required=True)
    p.add_argument("--cert", help="server certificate chain (PEM)")
    p.add_argument("--key", help="server private key (PEM)")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--out", required=True, help="received messages, one JSON line each")
    a = p.parse_args()

    ctx = None
    if a.mode in ("starttls", "tls"):
        if not (a.cert and a.key):
            p.error("--cert and --key are required with TLS")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)

    kwargs = dict(hostname="smtp.test", timeout=30)
    if a.mode == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.user is not None:
        kwargs.update(
            authenticator=authenticator(a.user, a.password or "", a.out + ".auth"),
            auth_required=True,
            # aiosmtpd knows a connection is TLS only after its own STARTTLS:
            # with implicit TLS the whole connection is, so it need not check;
            # in plain mode AUTH in clear is offered on purpose, a trap for a
            # client that would fall back from STARTTLS
            auth_require_tls=(a.mode == "starttls"),
        )

    handler = Handler(a.out)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, loop=loop, **kwargs),
        host="127.0.0.1",
        port=0,
        family=socket.AF_INET,
        ssl=ctx if a.mode == "tls" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)

    # serve until stdin closes
    done = loop.create_future()

    def on_stdin():
        if not os.read(sys.stdin.fileno(), 4096) and not done.done():
            done.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with server:
        await done


if __name__ == "__main__":
    asyncio.run(main())
