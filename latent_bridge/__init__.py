"""Latent Bridge: translate and search across modality embedding spaces through a graph of translators."""

__version__ = "0.1.0"
