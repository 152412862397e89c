"""Words of column and table names, as the profiler and the mapping agent read them.

``PATIENT_ID``, ``patientId``, ``PatientID`` and the run-together ``PATIENTID`` all read ``["patient", "id"]``:
names are split on case, punctuation and digits, run-together chunks are split where a known suffix ends them or
where a word splitter (``wordninja``, whose English word list ships with it: nothing is fetched) finds real words,
common abbreviations are expanded, and words are made singular.
"""

from __future__ import annotations

import re

import wordninja

# General abbreviations seen in source systems (not the names of any one dataset).
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "svc": ("service",), "srv": ("service",), "serv": ("service",), "dt": ("date",), "dte": ("date",),
    "dx": ("diagnosis",), "diag": ("diagnosis",), "px": ("procedure",), "proc": ("procedure",),
    "amt": ("amount",), "chg": ("charge",), "chrg": ("charge",), "pd": ("paid",), "pmt": ("payment",),
    "pt": ("patient",), "pat": ("patient",), "mbr": ("member",), "prov": ("provider",), "prv": ("provider",),
    "clm": ("claim",), "no": ("number",), "num": ("number",), "nbr": ("number",), "qty": ("quantity",),
    "cd": ("code",), "desc": ("description",), "dob": ("birth", "date"), "fname": ("first", "name"),
    "lname": ("last", "name"), "nm": ("name",), "identifier": ("id",), "ident": ("id",), "addr": ("address",),
    "ins": ("insurance",), "spec": ("specialty",), "stat": ("status",), "sts": ("status",), "typ": ("type",),
    "tp": ("type",), "yr": ("year",), "mo": ("month",), "mth": ("month",), "ln": ("line",), "dtl": ("detail",),
    "tot": ("total",), "cnt": ("count",), "dob_dt": ("birth", "date"), "sex": ("gender",), "zip": ("zip",),
    "postal": ("zip",), "st": ("state",), "bdate": ("birth", "date"), "birthdate": ("birth", "date"),
}
STOP_WORDS = frozenset(
    "a an the of and or for in on at to by its it is be each per one row rows when has have no with from as "
    "which that this was were given who whose s what where there their them they after before over all any "
    "same left".split()
)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


# Endings that close a run-together name (``CUSTOMERID``, ``SERVICEDATE``): split off before anything else.
SUFFIXES = tuple(sorted((
    "ids", "id", "key", "code", "cd", "date", "dt", "dte", "time", "name", "nm", "number", "num", "nbr", "no",
    "amount", "amt", "type", "typ", "status", "count", "cnt", "flag", "desc", "description", "total", "value",
), key=len, reverse=True))
_SHORT_PIECES = frozenset({"of", "to", "in", "on", "by", "at", "per", "or", "and"})


def split_run_together(chunk: str) -> list[str]:
    """A lower-case chunk with no separators, split into the words it runs together (or itself)."""
    if len(chunk) < 6 or chunk in ABBREVIATIONS:
        return [chunk]
    for suffix in SUFFIXES:
        if chunk.endswith(suffix) and len(chunk) - len(suffix) >= 3:
            return split_run_together(chunk[: -len(suffix)]) + [suffix]
    parts = wordninja.split(chunk)
    if len(parts) > 1 and all(len(p) >= 3 or p in _SHORT_PIECES for p in parts):
        return parts
    return [chunk]


def tokens(text: str) -> list[str]:
    """Words of a name or phrase: split on case and punctuation, abbreviations expanded, singular, no stop
    words and no bare numbers (``DX1`` -> ``["diagnosis"]``, ``SVC_DT`` -> ``["service", "date"]``)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    spaced = re.sub(r"([A-Za-z])(\d)", r"\1 \2", spaced)
    words: list[str] = []
    for chunk in re.split(r"[^a-z0-9]+", spaced.lower()):
        for raw in split_run_together(chunk) if chunk.isalpha() else [chunk]:
            if not raw or raw.isdigit() or raw in STOP_WORDS:
                continue
            for word in ABBREVIATIONS.get(raw, (raw,)):
                word = _singular(word)
                if word not in words:
                    words.append(word)
    return words


