"""The bank simulator framework shared by every simulated bank (HBB, JHB, BCB, TCS).

Books (`books.py`), the world clock (`clock.py`), test customers (`seed.py`), magic amounts
(`magic.py`), faults (`faults.py`), SMS (`sms.py`), notifications (`notifier.py`), partner
onboarding register (`partners.py`), interbank clearing (`clearing.py`), the `/_sim` endpoints
(`simapi.py`) and the multi-bank server (`server.py`). A bank package implements
`create_bank(context: BankContext) -> Institution` (see `bank.py` and docs/banks/simulators.md).
"""
