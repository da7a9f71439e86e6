"""Training of the learned codecs: data sampling, the rate-distortion loop, checkpoints, export.

``mlcompress train MODEL --data DIR --lambda L --steps N --out CKPT`` drives :func:`.loop.train`;
``mlcompress export CKPT --name hyperprior-q3`` drives :func:`.export.export`.
"""
