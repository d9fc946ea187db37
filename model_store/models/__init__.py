"""Model families. Each module registers its variants with `model_store.registry.register_model`.

Start reading at `base.py` (the interface every model implements), then `autoencoder.py` (the
smallest complete model) and `draem.py`. Modules here are discovered automatically by the
registry; a new family needs no edit to this file.
"""
