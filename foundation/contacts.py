"""Contact details as people type them: mainland China phone numbers and e-mail addresses.

Used by the models' validators: a wrong value raises `BadValue`, which the API answers with a 422
whose message the pages show in Chinese.
"""
from __future__ import annotations

import re

from foundation.errors import BadValue

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# A mobile number: 11 digits from 13 to 19, written with spaces or dashes, +86 or 86 before it.
_MOBILE = re.compile(r"(?:\+?86)?(1[3-9]\d{9})")
# A landline: the area code (0 and 2-3 digits, in brackets or not, a dash or not), 7-8 digits, an extension.
_LANDLINE = re.compile(r"(?:\+?86)?[(（]?0\d{2,3}[)）]?-?[2-9]\d{6,7}(?:(?:-|转)\d{1,6})?")


def check_phone(value: str) -> str:
    """A mainland mobile number (as its 11 digits) or landline number (as typed, without spaces);
    empty stays empty."""
    compact = re.sub(r"\s", "", value)
    if not compact:
        return ""
    if mobile := _MOBILE.fullmatch(compact.replace("-", "")):
        return mobile.group(1)
    if _LANDLINE.fullmatch(compact):
        return compact
    raise BadValue("'{value}' is not a phone number: a mobile number has 11 digits and starts with 1 "
                   "(13812345678), a landline starts with its area code (0737-4221234)", value=value)


def check_email(value: str) -> str:
    """The address, lower-cased, if it looks like one."""
    value = value.strip().lower()
    if not _EMAIL.fullmatch(value):
        raise BadValue("'{value}' is not an e-mail address", value=value)
    return value
