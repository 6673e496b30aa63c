"""satseg: semantic segmentation of satellite imagery, from a U-Net teacher to an edge student.

Importing ``satseg`` is cheap and never imports TensorFlow: the edge runtime (``satseg.edge``)
and the dataset/palette code (``satseg.classes``, ``satseg.imaging``) work without it.
"""

__version__ = "0.1.0"
