"""Communication API version and capabilities, shared by both ends of the protocol.

ML-Agents versions its protocol semantically: two sides can talk when their major versions
match (and, while the major is 0, their minors too). Release 21 speaks 1.5.0 and announces
every capability that version defines; so do this package and its stand-in players.
"""

from __future__ import annotations

from unity_gym.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto

COMMUNICATION_VERSION = "1.5.0"


def communication_compatible(ours: str, theirs: str) -> bool:
    """Whether a peer announcing ``theirs`` can talk to a side speaking ``ours``."""
    try:
        a = [int(part) for part in ours.strip().split(".")]
        b = [int(part) for part in theirs.strip().split(".")]
    except ValueError:
        return False
    if a[0] != b[0]:
        return False
    return a[0] != 0 or a[1:2] == b[1:2]


def full_capabilities() -> UnityRLCapabilitiesProto:
    """Every capability communication API 1.5.0 defines."""
    return UnityRLCapabilitiesProto(
        baseRLCapabilities=True,
        concatenatedPngObservations=True,
        compressedChannelMapping=True,
        hybridActions=True,
        trainingAnalytics=True,
        variableLengthObservation=True,
        multiAgentGroups=True,
    )
