"""Zip archives with odd general-purpose flags, for the hostile-file tests of every .npz reader."""


def with_zip_flags(raw: bytes, bits: int) -> bytes:
    """The archive with flag `bits` set on every member, in the local and the central headers.

    zipfile then raises RuntimeError (bit 0: encrypted) or NotImplementedError (bit 5: compressed
    patched data; bit 6: strong encryption) when a member is read, not BadZipFile.
    """
    out = bytearray(raw)
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = out.find(signature)
        while i >= 0:
            out[i + at] |= bits
            i = out.find(signature, i + 4)
    return bytes(out)
