"""One module per chapter, named like its notebook (``ch03_gad`` for ``03_gad.ipynb``): the chapter's studies,
tables and figure grids, built from the methods and metrics.
"""
