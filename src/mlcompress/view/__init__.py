"""See it: the comparison page of `mlcompress view`, `mlcompress bench` (report.html) and `make demo`.

    search.py   lands each codec near a target bpp (the quality search)
    page.py     the page itself: data, decoded images beside it as lossless WebP, one HTML file
                with the hand-written viewer (assets/viewer.js, viewer.css) inlined, so it works
                from file:// without a network
    compare.py  `mlcompress view`: one image through several codecs, or existing images side by side

The viewer shows two decoded images in one split view (a divider moved by mouse or arrow keys, a
key to swap sides, synchronised zoom fit/1:1/2x/4x and panning) with bytes, bpp, PSNR and MS-SSIM
for each side and their difference; bench pages add interactive RD curves and the report's tables.
"""
