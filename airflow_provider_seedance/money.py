"""Money: credits and dollars, formatted the same way everywhere (logs, errors, UI).

A leaf module: it imports nothing of the provider, so errors and models can both use it.
"""

from __future__ import annotations

from decimal import Decimal

#: Dollar value of one credit (the guide: 28 credits = $0.14).
USD_PER_CREDIT = Decimal("0.005")


def credits_to_usd(credits: int | None) -> Decimal:
    """Dollar value of a credit amount (exact, as a Decimal)."""
    return USD_PER_CREDIT * (credits or 0)


def format_usd(credits: int | None) -> str:
    """``"$0.14"`` for 28 credits; three decimals only where the price has them ($0.095)."""
    amount = credits_to_usd(credits)
    text = f"{amount:.3f}"
    return "$" + (text[:-1] if text.endswith("0") else text)
