"""From pixels to a map: slippy-map tiles, polygon labels on an image's grid.

Needs the ``[geo]`` extra (rasterio) for rasterising; tile arithmetic is pure Python.
"""
