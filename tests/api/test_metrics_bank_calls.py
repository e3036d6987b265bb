"""Bank calls show on /metrics by bank, interface, operation and outcome, measured at the channel
registry through which every service reaches a bank: here a real card binding at the simulated JHB."""

from __future__ import annotations

import re

import pytest
import requests

from tests.api import bank_backed
from tests.api.bank_backed import JHB_CARD, ZHANG_WEI, Platform
from tests.api.rfc9421_client import SignedClient

pytestmark = pytest.mark.e2e

# The shared fixtures, bound here by name so pytest finds them for this module's tests.
bank_world, onboarded_dir = bank_backed.bank_world, bank_backed.onboarded_dir
platform, endpoint, shop = bank_backed.platform, bank_backed.endpoint, bank_backed.shop


def test_a_bank_call_is_counted_and_timed_by_bank_interface_and_outcome(platform: Platform, shop: SignedClient) -> None:
    member = shop.post("/v1/members", {"external_id": "metrics-1", **ZHANG_WEI})
    assert member.status_code == 201, member.text
    applied = shop.post(f"/v1/members/{member.json()['id']}/cards", {"card_number": JHB_CARD, **ZHANG_WEI})
    assert applied.status_code == 201, applied.text

    text = requests.get(platform.base_url + "/metrics", timeout=10).text
    calls = re.findall(
        r'^tianpay_bank_calls_total\{bank="JHB",interface="quick_pay",operation="(\w+)",outcome="(\w+)"\} (\S+)$',
        text, flags=re.MULTILINE,
    )
    assert calls, "no JHB quick-pay call was counted"
    assert all(float(count) >= 1 for _operation, _outcome, count in calls)
    assert re.search(r'^tianpay_bank_call_duration_seconds_count\{bank="JHB",interface="quick_pay",operation="\w+"\} '
                     r'[1-9]', text, flags=re.MULTILINE)
    assert JHB_CARD not in text
