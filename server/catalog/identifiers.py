"""Persistent identifiers (docs/provenance.md, "Identifiers"): made from what never changes
about a thing, so they survive renames and catalog moves, and parsed back to it.

- a station's dataset of one product: ``obslink:{station}/{product}`` (``surface`` for its
  observations);
- a batch: ``obslink:{station}/{epoch}/{seq}``, its identity on the wire;
- an observation: ``obslink:{station}/{epoch}/{seq}/{n}``, the n-th reading (from 0) of that
  signed batch;
- a product (a radar volume, tilt or chunk): ``obslink:{station}/{epoch}/p{n}``, the agent's
  n-th product of that outbox epoch (docs/products.md).

Station ids are letters, digits, '.', '_' and '-' (docs/protocol.md); an epoch is the
outbox's random hex id, so the three forms are told apart by their number of parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from obslink.errors import ObslinkError

SCHEME = "obslink:"
SURFACE = "surface"  # a station's observations
RADAR = "radar"  # a station's radar products
_PRODUCT_NUMBER = re.compile(r"^p(0|[1-9][0-9]{0,18})$")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NUMBER = re.compile(r"^(0|[1-9][0-9]{0,18})$")


class IdentifierError(ObslinkError):
    """Text that is not an obslink identifier (said how it should look)."""


@dataclass(frozen=True)
class Identifier:
    station: str
    product: str | None = None  # a dataset's
    epoch: str | None = None  # a batch's or an observation's
    seq: int | None = None
    index: int | None = None  # an observation's
    number: int | None = None  # a product's

    @property
    def kind(self) -> str:
        if self.number is not None:
            return "product"
        return "dataset" if self.product else "batch" if self.index is None else "observation"

    def __str__(self) -> str:
        if self.number is not None:
            return product_id(self.station, self.epoch, self.number)
        if self.product:
            return dataset_id(self.station, self.product)
        if self.index is None:
            return batch_id(self.station, self.epoch, self.seq)
        return observation_id(self.station, self.epoch, self.seq, self.index)


def dataset_id(station: str, product: str = SURFACE) -> str:
    return f"{SCHEME}{station}/{product}"


def batch_id(station: str, epoch: str, seq: int) -> str:
    return f"{SCHEME}{station}/{epoch}/{seq}"


def observation_id(station: str, epoch: str, seq: int, index: int) -> str:
    return f"{SCHEME}{station}/{epoch}/{seq}/{index}"


def product_id(station: str, epoch: str, number: int) -> str:
    return f"{SCHEME}{station}/{epoch}/p{number}"


def parse_identifier(text: str) -> Identifier:
    forms = ("obslink:STATION/PRODUCT (a dataset), obslink:STATION/EPOCH/SEQ (a batch), "
             "obslink:STATION/EPOCH/SEQ/N (its N-th observation) or obslink:STATION/EPOCH/pN "
             "(a radar product)")
    if not text.startswith(SCHEME):
        raise IdentifierError(f"{text!r} is not an obslink identifier: give {forms}")
    parts = text[len(SCHEME):].split("/")
    if not 2 <= len(parts) <= 4 or not all(_PART.match(part) for part in parts[:2]):
        raise IdentifierError(f"{text!r} is not an obslink identifier: give {forms}")
    if len(parts) == 2:
        return Identifier(parts[0], product=parts[1])
    if len(parts) == 3 and _PRODUCT_NUMBER.match(parts[2]):
        return Identifier(parts[0], epoch=parts[1], number=int(parts[2][1:]))
    if not all(_NUMBER.match(part) for part in parts[2:]):
        raise IdentifierError(f"{text!r}: the sequence number and observation number are "
                              f"whole numbers; give {forms}")
    return Identifier(parts[0], epoch=parts[1], seq=int(parts[2]),
                      index=int(parts[3]) if len(parts) == 4 else None)
