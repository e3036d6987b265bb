"""The TCS card switch channel: host-to-host ISO 8583 over TCP (BANKS.md TCS "Switch side")."""
