"""Input and output: the files a run reads and writes, and nothing about combining them.

- :mod:`.inputs`: names (globs, ``@lists``, exposure names), checks, headers, per-image values.
- :mod:`.headerscan`: the one walker of FITS headers (plain files, without astropy).
- :mod:`.fitsheader`: the output header as 80-character cards.
- :mod:`.readers`: the readers of the inputs' pixels, one protocol for every kind of input
  (:mod:`.decompress`: compressed inputs through a temporary file).
- :mod:`.imageobjects`: inputs read from drizzlepac's image objects (inside AstroDrizzle).
- :mod:`.writer`: the atomic writer of every product (temporary name, then rename;
  :mod:`.writeback`: bytes written whole, their write-back started early).
- :mod:`.openfiles`: the open-file limit a large stack needs.
"""
