"""What the JHB adapter needs to talk to JHB: where it is, who we are, and the keys of both sides.

Built from the onboarding pack JHB issues (`onboarding.py`, docs/banks/jhb-adapter.md). The SM4
data keys are secrets and the SM2 private key is ours alone, so none of them appear in a repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tianpay.channels.jhb.signing import SM4_KEY_SIZE_BYTES, SigningKey, VerifyingKey


@dataclass(frozen=True, slots=True)
class JhbConfig:
    """The adapter's configuration.

    `data_keys` holds every SM4 data key JHB has issued and still accepts, by `key_id`; requests
    use `current_key_id`, while notifications and answers may name any of them (JHB seals a
    notification with the key we last used, so an older key stays useful during a rotation).
    """

    base_url: str
    partner_id: str
    platform_private_key: SigningKey = field(repr=False)
    jhb_public_key: VerifyingKey = field(repr=False)
    data_keys: Mapping[str, bytes] = field(repr=False)
    current_key_id: str
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if not self.partner_id:
            raise ValueError("partner_id is required")
        if self.current_key_id not in self.data_keys:
            raise ValueError(f"current_key_id {self.current_key_id!r} is not among the data keys")
        if any(len(key) != SM4_KEY_SIZE_BYTES for key in self.data_keys.values()):
            raise ValueError("every SM4 data key is 16 bytes")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        # A read-only copy, so a caller's dict cannot change the keys under a running adapter.
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "data_keys", MappingProxyType(dict(self.data_keys)))

    @property
    def current_data_key(self) -> bytes:
        return self.data_keys[self.current_key_id]
