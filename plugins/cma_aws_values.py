"""Text and value conventions shared by the CMA surface AWS file adapters."""

from __future__ import annotations

from obslink.errors import ConfigError
from obslink.plugins.cma_aws_items import Item
from obslink.plugins.formats import Option
from obslink.readings import QC_MISSING, QC_NOT_CHECKED, Reading

ENCODINGS = ("auto", "utf-8", "gbk")
ENCODING_OPTION = Option("auto", "text encoding: auto (UTF-8, else GBK), utf-8, gbk")


def checked_encoding(format_name: str, encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise ConfigError(f"option encoding of format {format_name!r} must be one of "
                          f"{', '.join(ENCODINGS)}, not {encoding!r}")
    return encoding


def decode_cma_text(raw: bytes, encoding: str) -> str:
    """CMA files are GBK or UTF-8, some with a byte-order mark; ``auto`` tries UTF-8 first
    (GBK text is almost never valid UTF-8)."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    if encoding == "auto":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "gbk"
    return raw.decode(encoding, "replace")


class BadValue(ValueError):
    """A token that is neither an integer nor one of the files' markers."""


TRACE_FLAG = "trace"  # "," written for an amount too small to measure: a value of 0
CALM_FLAG = "PPC"  # a wind direction written "PPC": calm, direction 0 (WMO: 0 is calm)


def is_missing_marker(token: str) -> bool:
    """Runs of "/" (missing) and tokens starting with "--" (not observed): kept as missing
    with the token as flag."""
    return (token != "" and token.strip("/") == "") or token.startswith("--")


def reading_for(item: Item, token: str, observed_at: int, period_s: int | None,
                flag: str | None, north_is_zero: bool = False) -> Reading:
    """The reading of one item (``item.scale`` is not None) written as ``token``.

    ``north_is_zero``: the file writes north as 000 (the hourly file); it becomes 360, so
    that a direction of 0 means calm only, as in WMO code tables."""
    element = item.element or item.code
    start = observed_at if period_s is None else observed_at - period_s * 1_000_000
    if token == "" or is_missing_marker(token):
        token = token or "empty"  # a blank fixed-width column
        flag = token if flag is None else f"{token} {flag}"
        return Reading(start, element, None, item.unit, item.code, flag, QC_MISSING, period_s)
    if token.startswith(","):  # trace: DecodeBABJ decodes it as its trace code, not missing
        return Reading(start, element, 0.0, item.unit, item.code, _flagged(TRACE_FLAG, flag),
                       QC_NOT_CHECKED, period_s)
    if item.direction and token == CALM_FLAG:
        return Reading(start, element, 0.0, item.unit, item.code, _flagged(CALM_FLAG, flag),
                       QC_NOT_CHECKED, period_s)
    digits = token[1:] if token.startswith("-") else token
    if not (digits.isascii() and digits.isdigit()):
        raise BadValue(f"{item.code} is {token!r}, not an integer or a marker (/ runs for "
                       "missing, , for trace" + (", PPC for calm" if item.direction else "")
                       + ")")
    number = int(token)
    if item.minus_thousand:
        number = 1000 - number
    if item.direction and north_is_zero and number == 0:
        number = 360
    value = number * item.scale if item.scale != 1.0 else float(number)
    return Reading(start, element, round(value, 1), item.unit, item.code, flag,
                   QC_NOT_CHECKED, period_s)


def _flagged(marker: str, flag: str | None) -> str:
    return marker if flag is None else f"{marker} {flag}"


def quality_flag(digits: list[str]) -> str | None:
    """``qc=<d…>`` from the quality digits of the levels that gave one, else None."""
    if all(d == "/" for d in digits):
        return None
    return "qc=" + "".join(digits)
