"""Money is Decimal from the broker's strings to the page; this is how it is written for people
(``format_money``) and for machines (``plain_decimal`` and the ``Money`` type of the JSON API)."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema

CENT = Decimal("0.01")
# Prices and amounts as the models store them: to a hundredth of a cent.
PRICE_PLACES = Decimal("0.0001")
# What a plain decimal string looks like in the API's responses: "0", "-12.5", "1.12".
PLAIN_DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"


def format_money(value: Decimal | None) -> str:
    """$1,234.50 / -$12.00; an empty value is an em dash."""
    if value is None or value == "":
        return "—"
    amount = to_cents(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def to_cents(value: Decimal | int | str) -> Decimal:
    """Rounded to the cent, halves up."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def plain_decimal(value: Decimal | int | str) -> str:
    """The exact value without exponent or trailing zeros: "0" (not "0E-9"), "1.12" (not
    "1.1200000000000"), "2500" (not "2.5E+3")."""
    amount = Decimal(value)
    if amount == 0:  # also "-0" and "0E-9"
        return "0"
    return format(amount.normalize(), "f")


# Amounts, prices and quantities in the JSON API: read from a number or a numeric string, always
# written as a plain decimal string (JSON numbers would lose Decimal's exactness in most clients).
Money = Annotated[
    Decimal,
    PlainSerializer(plain_decimal, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": PLAIN_DECIMAL_PATTERN, "examples": ["1.12"]},
        mode="serialization",
    ),
]
