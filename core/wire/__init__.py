"""The obslink wire protocol, versions 1 and 2 (docs/protocol.md). Imported by agent and collector.

One module per part of the contract:

- :mod:`~obslink.wire.topics`: the MQTT topic layout and station/network names;
- :mod:`~obslink.wire.batch`, :mod:`~obslink.wire.gap`, :mod:`~obslink.wire.key_announcement`:
  the signed bodies, and :mod:`~obslink.wire.ack`: the collector's answer, each with its own
  version constant;
- :mod:`~obslink.wire.product`: large products' manifests, chunks and acks;
- :mod:`~obslink.wire.envelope`: signing (``sign``, ``sign_bundle``) and verifying;
- :mod:`~obslink.wire.compact` and :mod:`~obslink.wire.envelope2`: protocol v2's compact
  batch bodies, their contexts and their envelope (``sign_v2``);
- :mod:`~obslink.wire.sealed`: sealing (``seal``, encryption to the collector) and opening;
- :mod:`~obslink.wire.incoming`: telling a sealed message from an envelope by their explicit
  markers, and envelopes apart by version.

Everything is re-exported here, so callers write ``wire.sign(...)``, ``wire.decode_ack(...)``.
"""

from obslink.wire.ack import ACK_VERSION, Ack, decode_ack, encode_ack
from obslink.wire.batch import (BATCH_VERSION, MAX_QC_CHECKS, Batch, BatchColumns, decode_batch,
                                decode_batch_columns, decode_v2_columns, encode_batch,
                                is_v2_body)
from obslink.wire.compact import NotCompact, context_ref
from obslink.wire.envelope2 import (ENVELOPE_V2, SIGNING_CONTEXT_V2, EnvelopeV2, digest_pairs,
                                    is_live_v2, sign_v2, signed_message_v2)
from obslink.wire.envelope import (BUNDLE_CONTEXT, ENVELOPE_VERSION, MAX_BUNDLE_BATCHES,
                                   MAX_ENVELOPE_BYTES, SIGNING_CONTEXT, Envelope, bundle_digests,
                                   sign, sign_bundle, signed_bundle, signed_message, verify)
from obslink.wire.gap import GAP_FIELDS, GAP_VERSION, GapReport, decode_gap, encode_gap
from obslink.wire.incoming import ENVELOPE_READERS, open_envelope, open_message
from obslink.wire.key_announcement import (KEY_ANNOUNCEMENT_VERSION, KeyRotation,
                                           decode_key_rotation, encode_key_rotation)
from obslink.wire.product import (MAX_CHUNK_BYTES, PRODUCT_VERSION, Chunk, ChunkHeader,
                                  Manifest, ProductAck, ProductGap, attachment_problem,
                                  decode_chunk, decode_chunk_header, decode_manifest,
                                  decode_product_ack, decode_product_gap, encode_chunk,
                                  encode_manifest, encode_product_ack, encode_product_gap,
                                  product_kind, spans)
from obslink.wire.sealed import SEALED_VERSION, SealedMessage, is_sealed, seal, unseal
from obslink.wire.topics import (LANE_PROPERTY, NETWORK_RE, STATION_ID_RE, TOPIC_ROOT,
                                 TOPIC_ROOT_V2, TOPIC_VERSION, ack_topic, alarm_subscription,
                                 alarm_topic, check_station_id, collector_subscription,
                                 data_topic, data_topic_v2, gap_topic, is_v2_topic, key_topic,
                                 parse_data_topic, product_ack_topic, product_topic,
                                 status_topic)

__all__ = [
    "ACK_VERSION", "BATCH_VERSION", "BUNDLE_CONTEXT", "ENVELOPE_READERS", "ENVELOPE_VERSION",
    "GAP_FIELDS", "GAP_VERSION", "KEY_ANNOUNCEMENT_VERSION", "LANE_PROPERTY",
    "MAX_BUNDLE_BATCHES", "MAX_ENVELOPE_BYTES", "MAX_QC_CHECKS", "NETWORK_RE",
    "SEALED_VERSION", "SIGNING_CONTEXT", "STATION_ID_RE", "TOPIC_ROOT", "TOPIC_VERSION",
    "Ack", "Batch", "BatchColumns", "Envelope", "GapReport", "KeyRotation", "SealedMessage",
    "ack_topic", "alarm_subscription", "alarm_topic", "bundle_digests", "check_station_id",
    "collector_subscription",
    "data_topic", "decode_ack", "decode_batch", "decode_batch_columns", "decode_gap",
    "decode_key_rotation", "encode_ack", "encode_batch", "encode_gap", "encode_key_rotation",
    "gap_topic", "is_sealed", "key_topic", "open_envelope", "open_message",
    "parse_data_topic", "seal", "sign", "sign_bundle", "signed_bundle", "signed_message",
    "status_topic", "unseal", "verify",
    "MAX_CHUNK_BYTES", "PRODUCT_VERSION", "Chunk", "Manifest", "ProductAck", "decode_chunk",
    "decode_manifest", "decode_product_ack", "encode_chunk", "encode_manifest",
    "encode_product_ack", "product_kind", "spans", "product_ack_topic", "product_topic",
    "ProductGap", "decode_product_gap", "encode_product_gap", "ChunkHeader",
    "attachment_problem", "decode_chunk_header",
    "NotCompact", "context_ref", "ENVELOPE_V2", "SIGNING_CONTEXT_V2", "EnvelopeV2",
    "digest_pairs", "is_live_v2", "sign_v2", "signed_message_v2", "is_v2_body", "decode_v2_columns",
    "TOPIC_ROOT_V2", "data_topic_v2", "is_v2_topic",
]
