"""Numbers people and programs type: amounts, shares and probabilities are ASCII decimals only.

Python's Decimal (and float) read any Unicode digit, so "\uff11\uff12" (full-width 12) or Arabic-Indic digits would
be 12, and "1_000" would be 1000. One rule, `ascii_decimal`, refuses them; the website's form field and the
API's serializer field below both check the raw input with it before converting, so a refusal names the
field: a form error on the website, a 400 in the API's error shape. (Input that is no number at all, such
as "abc" or "NaN", keeps the fields' usual message.)

Accepted: an optional sign, digits 0-9 with an optional decimal point, and an optional exponent (JSON
numbers such as 1e-05 are written that way). Surrounding whitespace is ignored, as the fields always did.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from rest_framework import serializers

ASCII_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
ASCII_MESSAGE = "Enter {name} with the digits 0-9 and a decimal point, e.g. 12.5."


def is_ascii_decimal(value: object) -> bool:
    """Whether `value` (a string, or a number a JSON body already decoded) is written as an ASCII decimal."""
    if isinstance(value, bool):
        return False
    return ASCII_DECIMAL.fullmatch(str(value).strip()) is not None


def _foreign_number(value: object) -> bool:
    """Decimal reads it as a finite number, but it is not written as an ASCII decimal (what the fields
    refuse with their own message; anything else that is not a number keeps their usual one)."""
    if is_ascii_decimal(value):
        return False
    try:
        return Decimal(str(value).strip()).is_finite()
    except (InvalidOperation, ValueError, TypeError):
        return False


def ascii_decimal(value: object, *, name: str = "a number") -> Decimal:
    """The Decimal `value` is written as, or ValueError with a message naming `name`."""
    if not is_ascii_decimal(value):
        raise ValueError(ASCII_MESSAGE.format(name=name))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(ASCII_MESSAGE.format(name=name)) from None


class AsciiDecimalFormField(forms.DecimalField):
    """A form's DecimalField that refuses what is not an ASCII decimal before converting it."""

    def to_python(self, value: Any) -> Any:  # Decimal | None; the stubs type it as IntegerField's
        if value not in self.empty_values and _foreign_number(value):
            raise forms.ValidationError(ASCII_MESSAGE.format(name="a number"), code="invalid")
        return super().to_python(value)


class AsciiDecimalApiField(serializers.DecimalField):
    """The API's DecimalField that refuses what is not an ASCII decimal before converting it."""

    def to_internal_value(self, data: Any) -> Decimal:
        if _foreign_number(data):
            raise serializers.ValidationError(ASCII_MESSAGE.format(name=self.field_name or "a number"), code="invalid")
        return super().to_internal_value(data)
