"""The data catalog: one interface (``Catalog``), the types that cross it, and
``open_catalog(url)``, the one way to get a catalog.

- ``interface``: every method a caller may use.
- ``outcomes``: what the collector hands storage and what reports hand back.
- ``errors``: what storage refuses.
- ``backends``: backends registered through a hook, picked by URL scheme.
- ``sqlite*``: the SQLite backend, a module per concern (schema, ingest, keys, station
  records and enrolment, reports).
- ``broker_passwords``: derived broker passwords and Mosquitto's hash, for any backend.
"""

from obslink.server.catalog.backends import open_catalog
from obslink.server.catalog.errors import (EnrolmentError, KeyInUseError, KeyRevokedError,
                                           NoSuchStationError, StationExistsError)
from obslink.server.catalog.interface import Catalog, CentreCheck
from obslink.server.catalog.outcomes import (AcceptedBatch, AcceptedGap, AcceptedKey,
                                             BatchQC, BrokerAccount, CentreChecked, QCCounts,
                                             Refusal, SignedBundle, Station, declared_floors)

__all__ = ["AcceptedBatch", "AcceptedGap", "AcceptedKey", "BatchQC", "BrokerAccount",
           "Catalog", "CentreCheck", "CentreChecked", "EnrolmentError", "KeyInUseError",
           "KeyRevokedError", "NoSuchStationError", "QCCounts", "Refusal", "SignedBundle",
           "Station", "StationExistsError", "declared_floors", "open_catalog"]
