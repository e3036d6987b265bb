"""``GET /v1/balance``: the merchant's pending and available balances, straight from the ledger."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from tianpay.domain.money import Money
from tianpay.services.merchants import merchant_balance

from .deps import AuthenticatedMerchant, ContainerDep
from .schemas import BalanceOut, MoneyOut

router = APIRouter(prefix="/v1", tags=["balance"])


@router.get("/balance", response_model=BalanceOut, summary="Retrieve the merchant's balance")
async def get_balance(merchant: AuthenticatedMerchant, container: ContainerDep) -> BalanceOut:
    """``pending``: collected, awaiting T+1 settlement; ``available``: settled, awaiting payout."""
    balance = await run_in_threadpool(merchant_balance, container.uow, merchant.merchant_id)
    return BalanceOut(
        merchant_id=merchant.merchant_id, pending=_money(balance.pending), available=_money(balance.available)
    )


def _money(amount: Money) -> MoneyOut:
    return MoneyOut(amount=amount.minor, currency=amount.currency.code)
