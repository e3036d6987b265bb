"""The log scan: every log line the suite produces is checked for secrets and personal data in clear.

``LogScanner`` is fed lines (the platform's redacting JSON pipeline writes into it during the whole
session, and the log files of the processes the fixtures start are read at the end) and remembers each
line that shows a test card, ID or phone number, a password used by the tests, an SMS code, or key
material. Masked forms (``621799*********0014``, ``138****8001``) never match: every number is
matched whole, with no digit on either side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from banksim.core import seed

# Passwords the tests type: online banking, portal and console logins, wallet logins and payment
# passwords (tests/*/conftest.py and the browser tests). A leak of any of them is a leak of a secret.
TEST_PASSWORDS = (
    seed.LOGIN_PASSWORD,
    "correct horse battery",
    "abc12345",
    "135790",
    "135792",
    "258013",
    "258036",
)
# Keys written as constants in the tests and the simulators' known-answer vectors.
TEST_KEYS_HEX = (
    "00112233445566778899aabbccddeeff",
    "0123456789abcdeffedcba9876543210",
    "0723c80db5f4cd3d0723c80db5f4cd3d",
)
MAX_REPORTED = 20


def _numbers_from_seed() -> dict[str, str]:
    found: dict[str, str] = {}
    for customer in seed.TEST_CUSTOMERS:
        found[customer.id_number] = "ID number"
        found[customer.phone] = "reserved phone"
        for card in customer.cards:
            found[card.acc_no] = "card number"
    for account in seed.INSTITUTIONAL_ACCOUNTS:
        found[account.acc_no] = "account number"
    return found


def _whole(value: str) -> str:
    """A pattern for ``value`` with no letter or digit glued to either side (so never a part of a mask)."""
    return rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])"


@dataclass(frozen=True, slots=True)
class Finding:
    what: str
    source: str
    line: str


class LogScanner:
    """Collects the lines that leak; ``write`` makes it usable as the logging pipeline's stream."""

    def __init__(self) -> None:
        numbers = _numbers_from_seed()
        self._rules: list[tuple[str, re.Pattern[str]]] = [
            *[(f"a test {what} in clear", re.compile(_whole(number))) for number, what in numbers.items()],
            *[("a test password", re.compile(_whole(password))) for password in TEST_PASSWORDS],
            *[("a test key", re.compile(_whole(key), re.IGNORECASE)) for key in TEST_KEYS_HEX],
            ("PEM key material", re.compile(r"-----BEGIN [A-Z0-9 ]*(PRIVATE KEY|CERTIFICATE|PUBLIC KEY)")),
            # A long hex string as the value of anything named like a key or secret.
            ("hex key material", re.compile(
                r"(?i)(?<![a-z])(key|secret|tmk|tpk|zpk|zak|zmk|pik|mak|kek|dek)(_?hex)?[\"']?\s*[:=]\s*[\"']?"
                r"[0-9a-f]{32,}(?![0-9a-z])"
            )),
            # A 6-digit code right after a name for SMS codes (sms_code, smsCode, verify_code, 验证码 …).
            ("an SMS code", re.compile(
                r"(?i)(sms_?code|verify_?code|verification code|otp|验证码|(?<![a-z_])code)[\"']?\D{0,6}"
                r"(?<!\d)\d{6}(?!\d)"
            )),
        ]
        self.findings: list[Finding] = []
        self.lines_scanned = 0
        self._pending = ""

    def scan(self, line: str, source: str) -> None:
        self.lines_scanned += 1
        for what, pattern in self._rules:
            if pattern.search(line):
                self.findings.append(Finding(what, source, line[:500]))
                return

    def scan_lines(self, lines: Iterable[str], source: str) -> None:
        for line in lines:
            self.scan(line, source)

    def scan_file(self, path: Path) -> None:
        with path.open(encoding="utf-8", errors="replace") as handle:
            self.scan_lines(handle, str(path))

    # The stream protocol of ``logging.StreamHandler``.
    def write(self, text: str) -> int:
        self._pending += text
        *complete, self._pending = self._pending.split("\n")
        self.scan_lines(complete, "in-process log")
        return len(text)

    def flush(self) -> None:
        return None

    def report(self) -> str:
        shown = "\n".join(f"- {f.what} in {f.source}: {f.line}" for f in self.findings[:MAX_REPORTED])
        more = len(self.findings) - MAX_REPORTED
        return shown + (f"\n… and {more} more" if more > 0 else "")


def log_files_under(root: Path) -> Iterator[Path]:
    """The log files the processes started by fixtures wrote under the session's temporary directory."""
    yield from (path for path in root.rglob("*.log") if path.is_file())
