"""What the catalog refuses, as exceptions every backend raises alike."""

from __future__ import annotations

from obslink.errors import ObslinkError


class KeyInUseError(ObslinkError):
    """A public key is registered to another station."""


class KeyRevokedError(ObslinkError):
    """A key that was revoked (or retired) is offered again: it never becomes valid again."""


class StationExistsError(ObslinkError):
    """A station id is registered already (or was, and is retired)."""


class EnrolmentError(ObslinkError):
    """An enrolment was refused; ``reason`` is invalid, used, revoked, expired, key-revoked
    or key-in-use; ``station`` the token's station where it is known."""

    def __init__(self, reason: str, message: str, station: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.station = station


class NoSuchStationError(ObslinkError):
    """A command names a station the catalog does not have."""


class NoSuchRecordError(ObslinkError):
    """An identifier names a batch, observation or dataset the catalog does not hold."""


def no_dataset(identifier: str) -> NoSuchRecordError:
    """A dataset the catalog does not hold (or the asking account may not know of)."""
    return NoSuchRecordError(f"no dataset {identifier!r} in the catalog; `obslink catalog "
                             "datasets list` shows them")


def no_product(identifier: str) -> NoSuchRecordError:
    """A product the catalog does not hold (or the asking account may not know of)."""
    return NoSuchRecordError(f"no product {identifier!r} in the catalog; `obslink catalog "
                             "products` lists them")


def no_alarm(alarm_id: int) -> NoSuchRecordError:
    """An alarm the catalog does not hold (or the asking account may not know of)."""
    return NoSuchRecordError(f"no alarm {alarm_id} in the catalog; `obslink alarms list "
                             "--all` lists them")
