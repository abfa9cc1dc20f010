"""service.record_format: format 3's bytes and the preset dictionaries they depend on."""

from __future__ import annotations

import hashlib
import json

import pytest

from service import record_format
from service.record import FORMAT_VERSION, BookingRecord

pytestmark = pytest.mark.unit

# A dictionary must never change once records are written with it (they would no longer
# decompress): a better one is added under a new id. These are the digests it was born with.
DICTIONARY_SHA256 = {
    1: "9421bb58a03e954aa3beab3f62bdf1d19325242188e05e1cf19258dbb23f10a8",
}


def test_no_dictionary_ever_changes():
    assert {
        number: hashlib.sha256(dictionary).hexdigest()
        for number, dictionary in record_format.DICTIONARIES.items()
    } == DICTIONARY_SHA256
    assert record_format.CURRENT_DICTIONARY in record_format.DICTIONARIES
    assert all(0 < number < 256 for number in record_format.DICTIONARIES)  # one header byte


def test_text_round_trips_behind_a_header_naming_format_and_dictionary():
    text = json.dumps({"subject": "Käse", "meeting": {"id": "MSo"}})
    packed = record_format.compress(text, FORMAT_VERSION)
    assert packed[:3] == bytes([0, FORMAT_VERSION, record_format.CURRENT_DICTIONARY])
    assert record_format.is_compressed(packed)
    assert record_format.version_of(packed) == FORMAT_VERSION
    assert record_format.decompress(packed) == text.encode()


def test_json_text_is_never_taken_for_compressed_bytes():
    record = BookingRecord.provisioned(
        booking_id="b",
        generation=0,
        external_id="e",
        organizer_id="o",
        request={},
        meeting={"id": "m"},
        graph_request_id=None,
    )
    assert not record_format.is_compressed(record.to_json().encode())
    assert not record_format.is_compressed(b"")
    assert record_format.is_compressed(record.to_bytes())


def test_a_dictionary_this_code_lacks_is_named_as_such():
    packed = bytearray(record_format.compress("{}", FORMAT_VERSION))
    packed[2] = 200
    with pytest.raises(record_format.UnknownDictionary):
        record_format.decompress(bytes(packed))


@pytest.mark.parametrize("cut", [1, 4, 10])
def test_a_truncated_payload_is_an_error_not_a_shorter_text(cut):
    packed = record_format.compress('{"subject": "a longer text than the cut"}', FORMAT_VERSION)
    with pytest.raises(ValueError):
        record_format.decompress(packed[:-cut])
