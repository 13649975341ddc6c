"""Money is Decimal from the broker's strings to the page; this is how it is written for people."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def format_money(value: Decimal | None) -> str:
    """$1,234.50 / -$12.00; an empty value is an em dash."""
    if value is None or value == "":
        return "—"
    amount = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"
