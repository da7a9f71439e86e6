"""Neural-network layers, transforms and models (torch); no bytes, no file formats."""
