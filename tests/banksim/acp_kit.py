"""Test-side tools for HBB: a platform signer onboarded as docs/banks/onboarding.md describes, an
answer verifier that checks HBB's chain and CN, a notification receiver, and a tiny browser.

The signer is written from BANKS.md, not imported from `banksim.hbb`, so the tests check the
simulator against an independent reading of the protocol.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

BEIJING = timezone(timedelta(hours=8))
_orders = itertools.count(1)


def new_order_id(prefix: str = "T") -> str:
    return f"{prefix}{datetime.now(BEIJING):%H%M%S%f}{next(_orders):04d}"


def beijing_now(offset_s: float = 0) -> str:
    return (datetime.now(BEIJING) + timedelta(seconds=offset_s)).strftime("%Y%m%d%H%M%S")


def signing_string(fields: Mapping[str, str]) -> str:
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature")


def parse_raw_answer(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in text.split("&"):
        key, _, value = pair.partition("=")
        out[key] = value
    return out


@dataclass
class Platform:
    """The platform as HBB's acquiring client: its key, its certificate and its onboarding pack."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    pack: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Platform:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tianpay test platform")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def mer_id(self) -> str:
        return str(self.pack["mer_id"])

    def onboard(self, hbb_url: str, partner_id: str | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{hbb_url}/_sim/partners",
            json={"partner_id": partner_id, "certificate_pem": self.cert_pem, "name": "天付支付"},
        )
        response.raise_for_status()
        self.pack = response.json()
        return self.pack

    def sign(self, fields: Mapping[str, str]) -> dict[str, str]:
        signed = dict(fields)
        signed["certId"] = str(self.cert.serial_number)
        digest = hashlib.sha256(signing_string(signed).encode()).hexdigest()
        signature = self.key.sign(digest.encode(), padding.PKCS1v15(), hashes.SHA256())
        signed["signature"] = base64.b64encode(signature).decode()
        return signed

    def base(self, txn_type: str, **fields: str) -> dict[str, str]:
        return {
            "version": "5.1.0",
            "encoding": "UTF-8",
            "signMethod": "01",
            "txnType": txn_type,
            "channelType": "07",
            "accessType": "0",
            "merId": self.mer_id,
            "currencyCode": "156",
            **fields,
        }

    def consume(self, amount_minor: int, front_url: str, back_url: str, **extra: str) -> dict[str, str]:
        return self.sign(
            self.base(
                "01",
                txnSubType="01",
                bizType="000201",
                orderId=extra.pop("orderId", new_order_id()),
                txnTime=extra.pop("txnTime", beijing_now()),
                txnAmt=str(amount_minor),
                frontUrl=front_url,
                backUrl=back_url,
                payTimeout=extra.pop("payTimeout", beijing_now(900)),
                **extra,
            )
        )

    def query(self, order_id: str, txn_time: str) -> dict[str, str]:
        fields = self.base("00", txnSubType="00", bizType="000000", orderId=order_id, txnTime=txn_time)
        fields.pop("currencyCode")
        fields.pop("channelType")
        fields["channelType"] = "07"
        return self.sign(fields)

    def refund(self, orig_query_id: str, amount_minor: int, back_url: str, **extra: str) -> dict[str, str]:
        return self.sign(
            self.base(
                "04",
                txnSubType="00",
                bizType="000201",
                orderId=extra.pop("orderId", new_order_id("R")),
                txnTime=extra.pop("txnTime", beijing_now()),
                txnAmt=str(amount_minor),
                origQryId=orig_query_id,
                backUrl=back_url,
                **extra,
            )
        )

    def verify_from_hbb(self, fields: Mapping[str, str]) -> None:
        """What the adapter must do: chain to the root, CN check, certId match, then the signature."""
        cert = x509.load_pem_x509_certificate(fields["signPubKeyCert"].encode())
        root = x509.load_pem_x509_certificate(self.pack["root_ca_pem"].encode())
        cert.verify_directly_issued_by(root)
        common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert common_name == "Huabei Bank Signing"
        assert fields["certId"] == str(cert.serial_number)
        digest = hashlib.sha256(signing_string(fields).encode()).hexdigest()
        public = cert.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(base64.b64decode(fields["signature"]), digest.encode(), padding.PKCS1v15(), hashes.SHA256())


def post_back(url: str, fields: Mapping[str, str], timeout_s: float = 10.0) -> dict[str, str]:
    """A server-to-server ACP call; returns the parsed raw answer."""
    response = httpx.post(url, data=dict(fields), timeout=timeout_s)
    response.raise_for_status()
    return parse_raw_answer(response.text)


@dataclass
class Received:
    path: str
    fields: dict[str, str]


class Receiver:
    """A small HTTP server standing in for the platform's notification endpoint.

    A path `/fail<N>/...` answers HTTP 500 to its first N notifications, then `ok`.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
                status = receiver._record(self.path, fields)
                payload = b"ok" if status == 200 else b"error"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _record(self, path: str, fields: dict[str, str]) -> int:
        with self._lock:
            self.received.append(Received(path, fields))
            first = path.strip("/").split("/")[0]
            if first.startswith("fail"):
                seen = self._failures.get(path, 0)
                self._failures[path] = seen + 1
                if seen < int(first[4:]):
                    return 500
            return 200

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FormParser(HTMLParser):
    """Collects the forms of a page: action, method and input values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.resp_codes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if "data-resp-code" in attributes:
            self.resp_codes.append(attributes["data-resp-code"])
        if tag == "form":
            self.forms.append(
                {"action": attributes.get("action", ""), "method": attributes.get("method", "get"), "fields": {}}
            )
        elif tag == "input" and self.forms and "name" in attributes:
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value", "")


def parse_page(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


@dataclass
class PaymentPage:
    """Where the payer's browser stands, and what the page says."""

    response: httpx.Response

    @property
    def page(self) -> FormParser:
        return parse_page(self.response.text)

    @property
    def resp_code(self) -> str | None:
        codes = self.page.resp_codes
        return codes[0] if codes else None

    @property
    def front_post(self) -> dict[str, str]:
        """The signed result the page auto-posts to frontUrl."""
        forms = [f for f in self.page.forms if "signature" in f["fields"]]
        assert forms, self.response.text
        return dict(forms[0]["fields"])


class Browser:
    """The payer's browser: follows redirects, submits forms."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, follow_redirects=True, timeout=10.0)

    def open_gateway(self, fields: Mapping[str, str], timeout_s: float = 10.0) -> PaymentPage:
        return PaymentPage(self.client.post("/gateway/api/frontTransReq.do", data=dict(fields), timeout=timeout_s))

    def submit(self, page: PaymentPage, index: int = 0, timeout_s: float = 10.0, **values: str) -> PaymentPage:
        form = page.page.forms[index]
        data = {**form["fields"], **values}
        url = httpx.URL(str(page.response.url)).join(form["action"])
        return PaymentPage(self.client.post(str(url), data=data, timeout=timeout_s))

    def pay(self, fields: Mapping[str, str], card_no: str, password: str = "Passw0rd!") -> PaymentPage:
        """Login and confirm; returns the result page."""
        login = self.open_gateway(fields)
        confirm = self.submit(login, card_no=card_no, password=password)
        return self.submit(confirm)

    def close(self) -> None:
        self.client.close()


def wait_for(predicate: Any, timeout_s: float = 5.0, interval_s: float = 0.02) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError("condition not met in time")


def iter_lines(stream: Any) -> Iterator[str]:
    yield from iter(stream.readline, "")
