"""service.domain.record_format: format 3's envelope and the preset dictionaries it depends on."""

from __future__ import annotations

import hashlib
import json

import pytest

from service.domain import record_format
from service.domain.record import FORMAT_VERSION, BookingRecord

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


def test_a_payload_round_trips_in_an_envelope_naming_format_and_dictionary():
    payload = json.dumps({"subject": "Käse", "meeting": {"id": "MSo"}}).encode() + b"\n\xff"
    envelope = json.loads(record_format.pack(payload, FORMAT_VERSION, note=7))
    assert envelope["formatVersion"] == FORMAT_VERSION
    assert envelope["d"] == record_format.CURRENT_DICTIONARY
    assert envelope["note"] == 7
    assert record_format.is_packed(envelope)
    assert record_format.unpack(envelope) == payload


def record(subject: str | None = None) -> BookingRecord:
    return BookingRecord.provisioned(
        booking_id="b",
        generation=0,
        external_id="e",
        organizer_id="o",
        request={"subject": subject},
        meeting={"id": "m", "subject": subject},
        graph_request_id=None,
    )


def test_a_record_document_is_never_taken_for_an_envelope():
    assert not record_format.is_packed(json.loads(record().to_json()))
    assert record_format.is_packed(json.loads(record().to_stored()))


def test_the_envelope_is_ascii_text():
    assert record("会议").to_stored().isascii()


def test_a_dictionary_this_code_lacks_is_named_as_such():
    envelope = json.loads(record_format.pack(b"{}", FORMAT_VERSION)) | {"d": 200}
    with pytest.raises(record_format.UnknownDictionary):
        record_format.unpack(envelope)


@pytest.mark.parametrize("cut", [1, 4, 10])
def test_a_truncated_payload_is_an_error_not_a_shorter_text(cut):
    envelope = json.loads(record_format.pack(b'{"subject": "a longer text"}', FORMAT_VERSION))
    stream = record_format.base64.b64decode(envelope["z"])
    envelope["z"] = record_format.base64.b64encode(stream[:-cut]).decode()
    with pytest.raises(ValueError):
        record_format.unpack(envelope)
