"""The one-line name of the first op where two back ends part, for `eval --expect-outputs` failures.

The search is `edgecnn compare`'s (`edgecnn.deploy.compare.first_divergence`);
this only picks the back ends to ask and never lets the helper fail a message.
"""

from __future__ import annotations


def first_differing_op(model_path, saved_backend: str, backend: str, images, image_index: int = 0) -> str | None:
    """'numba and litert first differ at op 2 (CONV_2D) output conv2, image 17: ...', or None.

    `images`: the uint8 images that differ (usually one, the first), `image_index`
    the dataset index of the first. LiteRT's reference is asked first: edgecnn's
    runtime equals it bit for bit, and on a board it needs no JIT compile (Numba's
    first run under qemu-user took minutes); then the saved file's back end.
    """
    try:
        from edgecnn.deploy.compare import first_divergence
    except ImportError:  # a device install without what compare needs: the gate's line stays as it is
        return None
    for other in dict.fromkeys(("litert-ref", saved_backend)):
        if other == backend:
            continue
        try:
            found = first_divergence(model_path, other, backend, images)
        except Exception:  # noqa: BLE001 - a back end missing here; the gate has failed regardless
            continue
        if found is not None:
            found.image += image_index
            return found.message()
    return None
