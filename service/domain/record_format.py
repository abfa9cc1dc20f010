"""Format 3's stored text: a record's JSON, deflated with a preset dictionary, in a small
JSON envelope.

A stored record is mostly Graph's onlineMeeting, whose keys, enum values and join-link
pieces are the same in every meeting; only ids, numbers and the caller's words differ.
zlib on its own cannot exploit that in a 3 KB text (it has nothing to refer back to yet),
so it starts from a preset dictionary (`zdict`) that reads like a record: it then spends
its bits on what is new in this one. About 3 KB of JSON becomes about 500 bytes.

The envelope is JSON text, `{"d":1,"formatVersion":3,"z":"<base64>"}` (`d` the dictionary,
`z` the zlib stream; one-letter names because Redis allocates values in size classes, and
a record sits near the edge of one):
- text, not raw bytes, so every release can read it: one before format 3 reads the
  envelope's formatVersion and answers 503 (a record of a newer release), as it does for
  any newer format, where raw bytes would fail to decode as UTF-8 (a 500). Base64 costs a
  third more than the raw stream, still far under a kilobyte;
- zlib's own checksum catches a damaged or truncated payload, and its header names the
  dictionary's Adler-32, so a wrong dictionary is an error, never a wrong record.

A dictionary never changes once records are written with it: a better one is added under
the next id and becomes CURRENT_DICTIONARY; the old ones stay readable for
BOOKING_TTL_SECONDS. tests/unit/test_record_format.py pins each dictionary's digest.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

PAYLOAD = "z"
DICTIONARY = "d"
# Measured on varied emulator records: level 9 is at most a byte smaller than 6, and 1 is
# about 12% larger; 9 costs tens of microseconds once per write, which follows a Graph call.
LEVEL = 9


class UnknownDictionary(ValueError):
    """Compressed with a dictionary this code does not have (a newer release's)."""


def is_packed(document: dict[str, Any]) -> bool:
    """Whether a stored JSON document is an envelope (format 3 on), not a record itself."""
    return PAYLOAD in document


def pack(payload: bytes, version: int, **members: Any) -> str:
    """The envelope of `payload` (with `members` beside it), as stored."""
    dictionary = DICTIONARIES[CURRENT_DICTIONARY]
    compressor = zlib.compressobj(LEVEL, zdict=dictionary)
    stream = compressor.compress(payload) + compressor.flush()
    envelope = {
        **members,
        "formatVersion": version,
        DICTIONARY: CURRENT_DICTIONARY,
        PAYLOAD: base64.b64encode(stream).decode("ascii"),
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True)


def unpack(envelope: dict[str, Any]) -> bytes:
    """The payload of an envelope; UnknownDictionary, or ValueError if it is damaged."""
    number = envelope.get(DICTIONARY)
    if not isinstance(number, int) or isinstance(number, bool):
        raise ValueError("the dictionary is not a number")
    dictionary = DICTIONARIES.get(number)
    if dictionary is None:
        raise UnknownDictionary(f"dictionary {number}, this code has {sorted(DICTIONARIES)}")
    encoded = envelope[PAYLOAD]
    if not isinstance(encoded, str):
        raise ValueError("the payload is not text")
    try:
        stream = base64.b64decode(encoded, validate=True)
    except binascii.Error as error:
        raise ValueError(f"damaged payload: {error}") from None
    decompressor = zlib.decompressobj(zdict=dictionary)
    try:
        payload = decompressor.decompress(stream)
    except zlib.error as error:
        raise ValueError(f"damaged payload: {error}") from None
    if not decompressor.eof or decompressor.unused_data:
        raise ValueError("truncated or padded payload")
    return payload


# Dictionary 1: a record as BookingRecord.to_json writes it (sorted keys, no spaces) for an
# emulator meeting, with made-up ids, preceded by the members and values other records
# carry (a cancellation, pending options, Graph's audioConferencing, beta's @odata.context).
# Nearest the end is what every record has: deflate reaches it with the shortest distances.
DICTIONARY_1 = (
    b'"audioConferencing":{"conferenceId":"","dialinUrl":"https://dialin.teams.microsoft.com/?'
    b'id=","tollFreeNumber":null,"tollNumber":"+1 "}"chatInfo":{"messageId":"","replyChainMess'
    b'ageId":"","threadId":"19:@thread.tacv2"}https://graph.microsoft.com/beta/$metadata#users'
    b'(\'"identity":{"user":{"displayName":"","id":"","tenantId":""}},"role":"attendee","role":'
    b'"coorganizer","role":"producer""cancelledAt":"2026-11-21T10:00:00+00:00","optionsPending'
    b'":true,"updatedAt":"2026-11-21T10:00:00+00:00","status":"cancelled""options":{"allowMeet'
    b'ingChat":"disabled","allowedPresenters":"organizer","lobbyBypassSettings":{"scope":"ever'
    b'yone"}}{"bookingId":"room-42:2026-11-23T09:00","externalId":"0b5c6e0e-36a4-5b5f-9a55-5a3'
    b'b1d7c2e10","formatVersion":3,"generation":0,"graphRequestId":"c1c1d0e0-7a3b-4e2f-8d6c-5b'
    b'4a39281706","meeting":{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#user'
    b"s('8b081ef6-4792-4def-b2c9-c363a1bf41d5')/onlineMeetings/$entity\",\"allowAttendeeToEnable"
    b'Camera":true,"allowAttendeeToEnableMic":true,"allowMeetingChat":"enabled","allowRecordin'
    b'g":true,"allowTeamworkReactions":true,"allowTranscription":true,"allowedLobbyAdmitters":'
    b'"organizerAndCoOrganizersAndPresenters","allowedPresenters":"everyone","audioConferencin'
    b'g":null,"broadcastSettings":null,"chatInfo":{"messageId":"0","replyChainMessageId":null,'
    b'"threadId":"19:meeting_ZTNiMGM0NDItOThmYy00YzE0LTlhZmItZjRjODk5NmZiOTI0@thread.v2"},"cre'
    b'ationDateTime":"2026-11-20T10:00:00.1234567Z","endDateTime":"2026-11-23T09:00:00.0000000'
    b'Z","externalId":"0b5c6e0e-36a4-5b5f-9a55-5a3b1d7c2e10","id":"MSo4YjA4MWVmNi00NzkyLTRkZWY'
    b"tYjJjOS1jMzYzYTFiZjQxZDUqMCoqMTk6bWVldGluZ19aVE5pTUdNME5ESXRPVGhtWXkwMFl6RTBMVGxoWm1JdFp"
    b'qUmpPRGs1Tm1aaU9USTBAdGhyZWFkLnYy","isBroadcast":false,"isEntryExitAnnounced":true,"join'
    b'Information":{"content":"data:text/html,%3Ca%20href%3D%22https%3A//teams.microsoft.com/l'
    b"/meetup-join/19%253Ameeting_ZTNiMGM0NDItOThmYy00YzE0LTlhZmItZjRjODk5NmZiOTI0%2540thread."
    b"v2/0%3Fcontext%3D%257B%2522Tid%2522%253A%252272f988bf-86f1-41af-91ab-2d7cd011db47%2522%2"
    b"52C%2522Oid%2522%253A%25228b081ef6-4792-4def-b2c9-c363a1bf41d5%2522%257D%22%3EJoin%20the"
    b'%20meeting%20now%3C/a%3E","contentType":"html"},"joinMeetingIdSettings":{"isPasscodeRequ'
    b'ired":true,"joinMeetingId":"123456789012","passcode":"AbC3dE"},"joinWebUrl":"https://tea'
    b"ms.microsoft.com/l/meetup-join/19%3Ameeting_ZTNiMGM0NDItOThmYy00YzE0LTlhZmItZjRjODk5NmZi"
    b"OTI0%40thread.v2/0?context=%7B%22Tid%22%3A%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2C%"
    b'22Oid%22%3A%228b081ef6-4792-4def-b2c9-c363a1bf41d5%22%7D","lobbyBypassSettings":{"isDial'
    b'InBypassEnabled":false,"scope":"organization"},"meetingTemplateId":null,"participants":{'
    b'"attendees":[{"role":"presenter","upn":"ada.lovelace@contoso.com"}],"organizer":{"identi'
    b'ty":{"application":null,"device":null,"user":{"displayName":null,"id":"8b081ef6-4792-4de'
    b'f-b2c9-c363a1bf41d5","identityProvider":"AAD","tenantId":"72f988bf-86f1-41af-91ab-2d7cd0'
    b'11db47"}},"role":"presenter","upn":null}},"recordAutomatically":false,"startDateTime":"2'
    b'026-11-23T08:00:00.0000000Z","subject":"Design review","videoTeleconferenceId":"45678901'
    b'23"},"organizerId":"8b081ef6-4792-4def-b2c9-c363a1bf41d5","provisionedAt":"2026-11-20T10'
    b':00:00+00:00","request":{"attendees":[{"role":"presenter","upn":"ada.lovelace@contoso.co'
    b'm","userId":null}],"chatInfo":null,"endDateTime":"2026-11-23T09:00:00.0000000Z","organiz'
    b'erId":"8b081ef6-4792-4def-b2c9-c363a1bf41d5","organizerPool":null,"startDateTime":"2026-'
    b'11-23T08:00:00.0000000Z","subject":"Design review"},"status":"active"}'
)

DICTIONARIES: dict[int, bytes] = {1: DICTIONARY_1}
CURRENT_DICTIONARY = 1


# Values read back from a stored document (a record, its fingerprint): a member of the
# wrong type makes the whole record unreadable (TypeError), which the store treats as
# absent, rather than a wrong value reaching an answer.
def text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)
