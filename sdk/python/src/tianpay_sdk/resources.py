"""Small namespaces over the merchant API's resources, one per noun.

Each method names an endpoint and returns the platform's JSON as a plain dict; the field names
inside are the platform's (see DESIGN.md §6), passed through unchanged.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

JSONObject = dict[str, Any]


class Requester(Protocol):
    def request(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any: ...


def path(template: str, *ids: str) -> str:
    """Fills `{}` slots with ids, each escaped, so an id can never change which endpoint is called."""
    for id_ in ids:
        # "." and ".." survive escaping and would be resolved as dot segments by the URL layer.
        if not isinstance(id_, str) or id_ in ("", ".", ".."):
            raise ValueError(f"an id must be a non-empty string other than '.' or '..', got {id_!r}")
    return template.format(*(quote(id_, safe="") for id_ in ids))


def _object(result: Any) -> JSONObject:
    if not isinstance(result, dict):
        raise TypeError(f"expected a JSON object from the platform, got {type(result).__name__}")
    return result


def _body(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    # A POST without parameters goes without a body, so its signature covers no digest.
    return params or None


class _Resource:
    def __init__(self, client: Requester) -> None:
        self._client = client

    def _get(self, url: str, params: Mapping[str, Any] | None = None) -> JSONObject:
        return _object(self._client.request("GET", url, params=params))

    def _post(self, url: str, params: Mapping[str, Any]) -> JSONObject:
        return _object(self._client.request("POST", url, json=_body(params)))


class Payments(_Resource):
    def create(self, **params: Any) -> JSONObject:
        return self._post("/v1/payments", params)

    def retrieve(self, payment_id: str) -> JSONObject:
        return self._get(path("/v1/payments/{}", payment_id))

    def list(self, **filters: Any) -> JSONObject:
        return self._get("/v1/payments", filters)

    def close(self, payment_id: str, **params: Any) -> JSONObject:
        return self._post(path("/v1/payments/{}/close", payment_id), params)

    def confirm(self, payment_id: str, **params: Any) -> JSONObject:
        """Completes a backend-driven quick pay or wallet pay with an SMS code or payment password."""
        return self._post(path("/v1/payments/{}/confirm", payment_id), params)


class Refunds(_Resource):
    def create(self, payment_id: str, **params: Any) -> JSONObject:
        return self._post(path("/v1/payments/{}/refunds", payment_id), params)

    def retrieve(self, refund_id: str) -> JSONObject:
        return self._get(path("/v1/refunds/{}", refund_id))


class Members(_Resource):
    def create(self, **params: Any) -> JSONObject:
        return self._post("/v1/members", params)

    def add_card(self, member_id: str, **params: Any) -> JSONObject:
        """Starts a card binding; finish it with `card_bindings.confirm`."""
        return self._post(path("/v1/members/{}/cards", member_id), params)

    def remove_card(self, member_id: str, card_id: str) -> JSONObject:
        return _object(self._client.request("DELETE", path("/v1/members/{}/cards/{}", member_id, card_id)))


class CardBindings(_Resource):
    def confirm(self, binding_id: str, **params: Any) -> JSONObject:
        return self._post(path("/v1/card-bindings/{}/confirm", binding_id), params)


class Mandates(_Resource):
    def create(self, **params: Any) -> JSONObject:
        return self._post("/v1/mandates", params)

    def confirm(self, mandate_id: str, **params: Any) -> JSONObject:
        return self._post(path("/v1/mandates/{}/confirm", mandate_id), params)

    def debit(self, mandate_id: str, **params: Any) -> JSONObject:
        return self._post(path("/v1/mandates/{}/debits", mandate_id), params)

    def revoke(self, mandate_id: str, **params: Any) -> JSONObject:
        return self._post(path("/v1/mandates/{}/revoke", mandate_id), params)


class Payouts(_Resource):
    def create(self, **params: Any) -> JSONObject:
        return self._post("/v1/payouts", params)

    def list(self, **filters: Any) -> JSONObject:
        return self._get("/v1/payouts", filters)


class Balance(_Resource):
    def retrieve(self) -> JSONObject:
        return self._get("/v1/balance")


class Settlements(_Resource):
    def list(self, **filters: Any) -> JSONObject:
        return self._get("/v1/settlements", filters)


class Statements(_Resource):
    def retrieve(self, date: datetime.date | str) -> str:
        """Returns the day's statement as CSV text."""
        day = date.isoformat() if isinstance(date, datetime.date) else date
        result = self._client.request("GET", path("/v1/statements/{}", day))
        if not isinstance(result, str):
            raise TypeError(f"expected CSV text from the platform, got {type(result).__name__}")
        return result


class Events(_Resource):
    def list(self, **filters: Any) -> JSONObject:
        return self._get("/v1/events", filters)

    def resend(self, event_id: str) -> JSONObject:
        return self._post(path("/v1/events/{}/resend", event_id), {})
