"""The network, its checkpoint format, and inference.

    from colorstream import model
    predictor = model.load()            # the bundled sketch model; model.load("video") for video faces
    photos = predictor.invert(sketches)  # numpy in, numpy out, batched
"""

from colorstream.model.inference import Predictor, load, pick_device

__all__ = ["Predictor", "load", "pick_device"]
