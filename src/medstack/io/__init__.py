"""Input and output: the files a run reads and writes, and nothing about combining them.

- :mod:`.inputs`: names (globs, ``@lists``, exposure names), checks, headers, per-image values.
- :mod:`.readers`: the readers of the inputs' pixels, one protocol for every kind of input.
- :mod:`.imageobjects`: inputs read from drizzlepac's image objects (inside AstroDrizzle).
- :mod:`.writer`: the atomic writer of every product (temporary name, then rename).
- :mod:`.openfiles`: the open-file limit a large stack needs.
"""
