"""The payer of ``tianpay demo``: a browser made of httpx that fills in the cashier and bank pages.

It reads the forms on each page as a browser would (hidden fields included) and posts them, so the
demo goes through exactly the pages a person would: the cashier, the bank's login and confirmation,
and back. A bank that never answers (magic 96/97) shows up as a timeout, which the payer reports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import TracebackType

import httpx

PASSWORD = "Passw0rd!"  # noqa: S105 - every test card's published login password (BANKS.md)
# 张伟's cards (BANKS.md "Test customers"): ¥50,000 at each bank.
CARDS = {"HBB": "6217990000000000014", "JHB": "6227990000000000013"}


class Leaves(enum.Enum):
    """What the payer does after confirming at the bank."""

    # Follows the bank back to the cashier, as the bank's page does by itself.
    RETURNS = "returns"
    # Closes the tab at the bank: only a notification or a query can tell the platform.
    CLOSES_TAB = "closes_tab"


@dataclass
class Form:
    action: str
    method: str
    form_id: str
    fields: dict[str, str] = field(default_factory=dict)
    choices: dict[str, list[str]] = field(default_factory=dict)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), values.get("method", "get").lower(), values.get("id", "")))
            return
        if tag != "input" or not self.forms or "name" not in values:
            return
        if values.get("type") == "radio":
            self.forms[-1].choices.setdefault(values["name"], []).append(values.get("value", ""))
        elif "value" in values:
            self.forms[-1].fields[values["name"]] = values["value"]


def forms_on(page: httpx.Response) -> list[Form]:
    reader = _FormReader()
    reader.feed(page.text)
    for form in reader.forms:
        form.action = str(page.url.join(form.action))
    return reader.forms


def the_form(page: httpx.Response, *, action_ending: str = "", form_id: str = "") -> Form:
    found = [
        f for f in forms_on(page)
        if (not action_ending or f.action.endswith(action_ending)) and (not form_id or f.form_id == form_id)
    ]  # fmt: skip
    if len(found) != 1:
        raise PayerStuck(f"expected one form ({action_ending or form_id}) on {page.url}, found {len(found)}")
    return found[0]


class PayerStuck(Exception):
    """A page did not look as a payer expects: the demo reports it instead of guessing."""


class BankSilent(Exception):
    """The bank held the request and gave up without an answer (a gateway timeout, 504)."""


class Payer:
    """One payer's browser session (cookies included) across the cashier and the banks."""

    def __init__(self, timeout_s: float) -> None:
        self._browser = httpx.Client(timeout=timeout_s, follow_redirects=True)

    def __enter__(self) -> Payer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._browser.close()

    @property
    def browser(self) -> httpx.Client:
        """The session itself, for pages other than the cashier (the wallet's), sharing its cookies."""
        return self._browser

    def pay(self, cashier_url: str, bank: str, leaves: Leaves = Leaves.RETURNS) -> str:
        """Pays at ``bank`` from the cashier page; returns what the payer last saw, in a few words."""
        return self.pay_at_bank(self.choose_bank(cashier_url, bank), bank, leaves)

    def pay_at_bank(self, bank_form: Form, bank: str, leaves: Leaves = Leaves.RETURNS) -> str:
        """Follows a page's form to ``bank`` (the cashier's or the wallet top-up's), logs in and confirms."""
        try:
            if bank == "JHB":
                return self._pay_at_jhb(bank_form, leaves)
            return self._pay_at_hbb(bank_form, leaves)
        except (httpx.TimeoutException, BankSilent):
            return "the bank never answered"

    def choose_bank(self, cashier_url: str, bank: str) -> Form:
        cashier = self._ok(self._browser.get(cashier_url))
        choice = the_form(cashier, action_ending="/pay")
        if bank not in choice.choices.get("bank", []):
            raise PayerStuck(f"the cashier does not offer {bank}")
        redirect_page = self._ok(self._browser.post(choice.action, data={**choice.fields, "bank": bank}))
        return the_form(redirect_page, form_id="bank-form")

    def _pay_at_hbb(self, bank_form: Form, leaves: Leaves) -> str:
        login_page = self._ok(self._browser.post(bank_form.action, data=bank_form.fields))
        login = the_form(login_page, action_ending="/login")
        credentials = {"card_no": CARDS["HBB"], "password": PASSWORD}
        confirm_page = self._ok(self._browser.post(login.action, data={**login.fields, **credentials}))
        confirm = the_form(confirm_page, action_ending="/confirm")
        result_page = self._ok(self._browser.post(confirm.action, data=confirm.fields))
        if leaves is Leaves.CLOSES_TAB:
            return "closed the tab at HBB"
        # HBB's result page posts the signed result back to the cashier by script; do it by hand.
        back = the_form(result_page, form_id="back")
        final = self._ok(self._browser.post(back.action, data=back.fields))
        return _state_on(final)

    def _pay_at_jhb(self, bank_form: Form, leaves: Leaves) -> str:
        login_page = self._ok(self._browser.get(bank_form.action, params=bank_form.fields))
        login = the_form(login_page, action_ending="/login")
        credentials = {"card_no": CARDS["JHB"], "password": PASSWORD}
        confirm_page = self._ok(self._browser.post(login.action, data={**login.fields, **credentials}))
        confirm = the_form(confirm_page, action_ending="/confirm")
        if leaves is Leaves.CLOSES_TAB:
            self._browser.post(confirm.action, data=confirm.fields, follow_redirects=False)
            return "closed the tab at JHB"
        final = self._ok(self._browser.post(confirm.action, data=confirm.fields))
        return _state_on(final)

    @staticmethod
    def _ok(page: httpx.Response) -> httpx.Response:
        if page.status_code == 504:
            raise BankSilent(str(page.url))
        if page.status_code != 200:
            raise PayerStuck(f"{page.request.method} {page.url} answered {page.status_code}")
        return page


def _state_on(result_page: httpx.Response) -> str:
    """The state the platform's result page shows (``data-state``), or where the payer ended up."""
    marker = 'data-state="'
    text = result_page.text
    if marker not in text:
        return f"ended at {result_page.url.path}"
    return "result page: " + text.split(marker, 1)[1].split('"', 1)[0]
