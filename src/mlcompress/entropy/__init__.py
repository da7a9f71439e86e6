"""Entropy modelling and coding; knows nothing about images.

* :mod:`.coder` (numpy + constriction): frozen integer tables (:class:`~.coder.TableSet`) and
  ``encode_symbols(symbols, table_index, tables) -> bytes`` / ``decode_symbols(data,
  table_index, tables) -> symbols`` with an escape stream, so any int32 value codes.
* :mod:`.quantize` (torch): noise for training, rounding / ``round(y - mu) + mu`` for coding.
* :mod:`.models` (torch): ``EntropyBottleneck`` (factorized learned prior) and
  ``GaussianConditional`` (mean-scale, 64-level scale table); both ``update()`` to freeze tables.

To code an integer tensor of another model's latents (e.g. a CAE) with a factorized prior::

    eb = EntropyBottleneck(C); ...train with eb(y) likelihoods...; eb.update()
    data = eb.compress(y)                      # y: B x C x ... float, coded as round(y)
    y_hat = eb.decompress(data, y.shape)       # float32, equals round(y)
"""
